"""Plain types, validation rules and errors. Imports nothing else from fingerplat."""
