"""FHIR R4 facade (read-only): Patient, ServiceRequest (a requested procedure) and Task (a
scheduled step) as JSON, built and validated with fhir.resources, over the same rows as the REST
API. See docs/api.md ("FHIR")."""
