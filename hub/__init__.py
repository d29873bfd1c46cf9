"""Hub integration: sign-in, the hub's pages and headers, the reconciler, the service runner, the web kit
and the catalogue pages."""
