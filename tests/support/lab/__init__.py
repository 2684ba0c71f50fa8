"""Test-only network labs (namespaces, bridges, veths) and runners that probe inside them."""
