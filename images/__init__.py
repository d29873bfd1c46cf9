"""Analysis images: the Debian base, the singleuser image, and how they are built (``build``)."""
