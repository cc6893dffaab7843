"""Which resource types carry parties (a referral's: seen only by its parties) and which are the directory's (seen
by every client that may read the directory). The access filter, the permission check's roles, the write-authority
table and retention read these sets; nothing else lists them."""
from __future__ import annotations

DIRECTORY_TYPES = frozenset({"Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole"})
REFERRAL_TYPES = frozenset({"ServiceRequest", "Task", "Patient", "Consent", "DocumentReference", "Procedure"})
