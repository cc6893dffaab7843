"""Which search values reach the audit log: ids, references, codes and ordinary dates; never identifiers, names,
birth dates, text matches or unknown parameters."""
from exchange.audit.redact import safe_query


def test_ids_references_codes_and_dates_are_kept():
    pairs = [("_id", "a1"), ("status", "requested"), ("owner", "Organization/o1"), ("patient", "Patient/p1"),
             ("authored-on", "ge2026-01-01"), ("_lastUpdated", "gt2026-01-01"), ("_count", "10")]
    assert safe_query("Task", pairs) == pairs


def test_identifying_values_are_dropped_and_names_kept():
    pairs = [("identifier", "https://hotline.example.org/case|HL-1"), ("birthdate", "1990-02-03"),
             ("name", "Amira"), ("family:exact", "Haddad"), ("subject:identifier", "HL-1"),
             ("subject.name", "Amira"), ("subject:Patient.identifier", "HL-1"),
             ("organization:Organization.name", "Amal"), ("telecom", "+961"), ("_content", "code word"), ("gender", "female")]
    assert safe_query("Patient", pairs) == [(key, "") for key, _ in pairs]


def test_audit_event_search_values_are_kept():
    pairs = [("agent", "Organization/o1"), ("entity", "Task/t1"), ("date", "ge2026"), ("action", "R")]
    assert safe_query("AuditEvent", pairs) == pairs
