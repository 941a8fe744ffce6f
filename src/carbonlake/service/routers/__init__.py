"""The API's routes, one module per area; each ``build(read, write)`` returns a router."""
