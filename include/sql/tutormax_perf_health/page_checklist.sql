SELECT coalesce(json_agg(json_build_object(
        'item', item, 'title', title, 'status', status, 'evidence', evidence, 'checked_at', checked_at)
        ORDER BY position), '[]'::json)::text
FROM {schema}.health_checklist
WHERE checked_on = (SELECT max(checked_on) FROM {schema}.health_checklist)
