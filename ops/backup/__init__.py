"""Backups, in one home.

- `store`: where backups live and how one is sealed, locked, found, read and pruned
- `retention`: which backups a series keeps (restic's forget rules; a wiped project prunes nothing)
- `paths`: where each object's bytes go inside a backup, whatever its key
- `buckets`: backup-storage, a new backup of one environment's buckets
- `full`: what `inv backup` adds to it (config export, database dump, secret names, functions commit)
- `dumpfacts`: rows per table and sequence values, read from a dump
- `verify`: verify-backup
- `restore`: restore-storage (restore-db lives with the dump, in `ops.db.dump`)
- `offsite`: copies of sealed backups on a backup target (another S3 endpoint), and back
- `series`: inv backups, a series listed with the rule that keeps each backup
- `records`: what happened to a remote backup (sealed, verified, drilled), kept at the target beside it
- `lock`: one remote-first backup of an environment to a target at a time (a lock object there)
"""
