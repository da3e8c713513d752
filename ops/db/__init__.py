"""A project's database: connection strings per client, connecting, the catalog, dumps and what a restore must hold."""
