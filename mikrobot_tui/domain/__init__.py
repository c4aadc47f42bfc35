"""Pure value types and math: no I/O, no asyncio, no textual."""
