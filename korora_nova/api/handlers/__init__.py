"""The API's resources, one module per resource (routes: api.router)."""
