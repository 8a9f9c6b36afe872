"""Backup and restore: a streaming, signed archive of queues, dead letters and the audit trail.

``archive.py`` is the file format (no Redis), ``take.py`` takes a backup, ``restore.py``
writes one back, ``schedule.py`` runs backups on an interval with retention.
"""
