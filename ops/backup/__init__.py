"""Backups, in one home.

- `store`: where backups live and how one is sealed, locked, found, read and pruned
- `paths`: where each object's bytes go inside a backup, whatever its key
- `storage`: backup-storage, a new backup of one environment's buckets
- `full`: what `inv backup` adds to it (config export, database dump, secret names, functions commit)
- `verify`: verify-backup
- `restore`: restore-storage (restore-db lives with the dump, in `ops.dbdump`)
- `offsite`: copies of sealed backups on a backup target (another S3 endpoint), and back
"""
