"""The receiver service: the ingress for OCP pushes (CDR events and recordings)."""
