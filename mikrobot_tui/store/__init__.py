"""SQLite: schema and migrations, the batched writer, the event log, queries and commands."""
