-- Tutors with sessions in the last %(days)s days, busiest first: their dashboards are the ones read.
SELECT s.tutor_id
FROM sessions AS s
WHERE s.scheduled_at >= now() - make_interval(days => %(days)s)
GROUP BY s.tutor_id
ORDER BY count(*) DESC, s.tutor_id
LIMIT %(limit)s
