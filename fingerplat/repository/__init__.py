"""SQL only: tables, engine set-up, queries. No permission rules live here."""
