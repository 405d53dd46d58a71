"""Weekly database maintenance, one module per step in the order the DAG runs them:
`snapshot` → `plan` → `vacuum` → `snapshot` (after) → `report` (with `findings` and
`recommendations`) → `store` → `notify`. `common` holds what they share."""
