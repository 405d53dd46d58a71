"""Runtime foundations every capability uses: settings, connection ids, database sessions,
storage, the shared advisory lock, notification, report rendering, assets, paths and the DAG policy.

Nothing here imports a capability (maintenance, loadtest, health, web) or the devstack.
"""
