-- The revisions the project's version table records (several rows only on a branched history).
-- {version_table} is the quoted schema-qualified table of migrations.project.version_table(_schema).
SELECT version_num::text FROM {version_table} ORDER BY 1
