SELECT max(checked_at) AS checked_at FROM {schema}.health_checklist
