"""Read-only views of all environments: status, doctor, smoke, envs."""
