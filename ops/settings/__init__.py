"""Project settings as code: read and compared across environments, the rules of what weakens security, promoted."""
