"""Sign-in: the demo and OpenID Connect authenticators and what they share (throttling)."""
