"""Sources: the tutorial's back-ends made into importers that keep a tenant in sync.

``users_file`` and ``passwd`` read their input into import records (used by
``fingerplat import`` and by ``serve``), ``web`` fetches statuses over HTTP,
and ``runner`` runs the configured ``[[source]]`` entries on their intervals
inside ``serve``. Every write goes through the service's import use case.
"""
