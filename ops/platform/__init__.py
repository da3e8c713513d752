"""The platform around a database: the CLI, migrations, functions, secrets, the Management API, Lovable code."""
