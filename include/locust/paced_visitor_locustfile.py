"""A user's own locustfile, importing none of ours, for tests/loadtest/test_steady_state.py: each
user GETs `/` every half second. The test copies it elsewhere, once as it is and once behind an
`import server_time` line (as the README says a locustfile may import it); the runner records
every request per second either way."""

from locust import HttpUser, constant, task


class Visitor(HttpUser):
    wait_time = constant(0.5)  # the test's WAIT_S: its expected req/s follows from it

    @task
    def index(self) -> None:
        self.client.get("/")
