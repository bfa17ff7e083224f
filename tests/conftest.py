"""Shared fixtures: a fresh workspace, real speech, a real Huey consumer process, the studio
server, and Debian's chromium. Nothing here downloads anything."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# One torch/BLAS thread per process: tests run many processes (server, worker, job children) on
# 2 cores, and oversubscribed threads made generation ~10x slower here.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BARK_STUDIO_SHARED", REPO.parent / "shared"))
SPEECH_DIR = SHARED / "fixtures" / "speech"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A fresh workspace, also exported as BARK_STUDIO_HOME for subprocesses."""
    from studio.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    monkeypatch.delenv("BARK_STUDIO_REDIS_URL", raising=False)
    monkeypatch.delenv("BARK_STUDIO_DATABASE_URL", raising=False)  # SQLite unless a test asks (postgres_url)
    return Workspace.resolve(home)


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    assert SPEECH_DIR.is_dir(), f"real speech fixtures missing at {SPEECH_DIR}"
    return SPEECH_DIR


@pytest.fixture(scope="session")
def awb_wav(speech_dir) -> Path:
    return speech_dir / "awb_arctic_a0007.wav"  # Scottish English male, 16 kHz


@pytest.fixture(scope="session")
def slt_wav(speech_dir) -> Path:
    return speech_dir / "slt_arctic_a0009.wav"  # US English female, 16 kHz


@pytest.fixture(scope="session")
def hub_fixture_env() -> dict:
    """The env that points every loader at the real-format `small` preset cache, offline
    (tests/hub_fixture.py: built once, kept under ~/.cache/bark-studio-tests across sessions)."""
    from tests.hub_fixture import hub_env

    return hub_env()


@pytest.fixture
def real_hub(hub_fixture_env, monkeypatch) -> dict:
    """hub_fixture_env, also set in this process (and so in the subprocesses it starts)."""
    for key, value in hub_fixture_env.items():
        monkeypatch.setenv(key, value)
    return hub_fixture_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, home: Path, check: bool = True, timeout: float = 600, env: dict | None = None):
    """Run the real `bark-studio` command in a subprocess."""
    full_env = {**os.environ, "BARK_STUDIO_HOME": str(home), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"bark-studio {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


class Consumer:
    """A real `bark-studio worker` process for one workspace."""

    def __init__(self, ws, workers: int = 2, env: dict | None = None):
        self.ws = ws
        self.log = open(ws.root / f"worker-{time.time_ns()}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio.cli", "--home", str(ws.root), "worker", "--workers", str(workers)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)
        self.wait_alive()

    def wait_alive(self, timeout: float = 120) -> None:  # a start at load 8 takes tens of seconds
        from studio import jobs

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early:\n{self.output()}"
            if any(w.endswith(f":{self.proc.pid}") for w in jobs.live_workers(self.ws.db)):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker did not come up:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:  # still readable after stop()
            self.log.flush()
        return Path(self.log.name).read_text()

    def freeze(self) -> None:
        """SIGSTOP the consumer, its workers and the job processes they started (one process group),
        so a test can look at a running job that cannot move on meanwhile."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def stop(self, sig=signal.SIGINT, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            with contextlib.suppress(ProcessLookupError):  # a frozen group acts on it only once resumed
                os.killpg(self.proc.pid, signal.SIGCONT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def consumer(ws):
    c = Consumer(ws)
    yield c
    c.stop()


class RedisServer:
    """A real redis-server (Debian's package) on a free port, its data in a temp folder."""

    def __init__(self, data_dir: Path):
        import shutil

        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is missing: run `make system-deps` (apt-get install redis-server)")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = open(data_dir / "redis.log", "w")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                                      "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 60  # generous for load 8: the loop ends at the first answer
        while True:
            assert self.proc.poll() is None, f"redis-server exited:\n{Path(self.log.name).read_text()}"
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError("redis-server did not come up")
                time.sleep(0.1)
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def redis_url(ws, tmp_path, monkeypatch):
    """A fresh redis-server for one test, exported as BARK_STUDIO_REDIS_URL (so RedisHuey is used)."""
    server = RedisServer(tmp_path / "redis")
    monkeypatch.setenv("BARK_STUDIO_REDIS_URL", server.url)
    yield server.url
    server.stop()


OWNER_PASSWORD = "test-owner-password"  # the studio requires the owner's login (studio/security.py)


class Server:
    """The real studio web process (`bark-studio serve`) on a free port. The studio's tabs need the
    owner's login: `server.login(page)` logs a Playwright page in, `server.owner_client()` an httpx client."""

    def __init__(self, ws, embedded_workers: int = 0, env: dict | None = None, extra_args: tuple = ()):
        self.password = (env or {}).get("BARK_STUDIO_PASSWORD") or OWNER_PASSWORD
        env = {"BARK_STUDIO_PASSWORD": self.password, **(env or {})}
        for attempt in range(3):
            # free_port's port can be taken (by another xdist worker's server, or as a connection's
            # source port) before this server binds it; then the server exits and a new port is tried
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log = open(ws.root / f"server-{time.time_ns()}.log", "w")
            args = [sys.executable, "-m", "studio.cli", "--home", str(ws.root), "serve", "--port", str(self.port)]
            args += ["--workers", str(embedded_workers)] if embedded_workers else ["--no-worker"]
            self.proc = subprocess.Popen(args + list(extra_args), stdout=self.log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(env or {})}, start_new_session=True)
            try:
                self.wait_up()
                return
            except AssertionError:
                if attempt == 2 or self.proc.poll() is None or "address already in use" not in self.output().lower():
                    raise
                self.stop()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def wait_up(self, timeout: float = 240) -> None:
        """Wait for the first answer (about 10 s alone; a box at load 8+ needs minutes); a server that
        never answers is stopped, not left running behind the failed test."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise AssertionError(f"server exited early:\n{Path(self.log.name).read_text()}")
            try:
                httpx.get(self.url + "/", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError(f"server did not come up within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def login(self, page) -> None:
        """Log a Playwright page's browser context in as the owner (the cookie is shared)."""
        res = page.request.post(self.url + "/login", form={"username": "owner", "password": self.password})
        assert res.ok, f"owner login failed: {res.status} {res.text()}"

    def open_page(self, browser, timeout_ms: int = 60_000):
        """A new Playwright page, logged in as the owner, on the studio's front page."""
        page = browser.new_page()
        page.set_default_timeout(timeout_ms)
        self.login(page)
        page.goto(self.url + "/")
        return page

    def client_from(self, address: str):
        """An httpx client whose requests leave from `address` (127.x.y.z: this host), so the
        server's per-client login limit counts its failures apart from every other test's."""
        import httpx

        return httpx.Client(base_url=self.url, timeout=30, transport=httpx.HTTPTransport(local_address=address))

    def owner_client(self):
        import httpx

        client = httpx.Client(base_url=self.url, timeout=30)
        res = client.post("/login", data={"username": "owner", "password": self.password})
        assert res.status_code == 200, f"owner login failed: {res.status_code} {res.text}"
        return client


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (Playwright's own browser download cannot work here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def train_template(tmp_path_factory, speech_dir) -> Path:
    """A workspace with a prepared, transcribed and tokenized (tiny) dataset "voice" from the real
    speech fixtures, built once per session; tests copy it (tests.queue_support.copy_template)."""
    from tests.queue_support import build_template

    return build_template(tmp_path_factory.mktemp("train-template") / "home", speech_dir)


def postgres_bin_dir() -> Path | None:
    """Debian's PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin), newest first, else PATH."""
    import shutil

    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if versions:
        return versions[-1].parent
    exe = shutil.which("postgres")
    return Path(exe).resolve().parent if exe else None


class PostgresServer:
    """A real PostgreSQL server (Debian's package) on a free port, its cluster in a temp folder.
    postgres refuses to run as root, so as root it runs as the `postgres` user Debian's package creates."""

    def __init__(self):
        import pwd
        import tempfile

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            pytest.fail("PostgreSQL is missing: run `make system-deps` (apt-get install postgresql)")
        as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="bark-pg-"))  # not under pytest's root-only tmp
        if os.getuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")  # created by Debian's postgresql package
            except KeyError:
                pytest.fail("postgres refuses to run as root and there is no `postgres` user: "
                            "run `make system-deps` (apt-get install postgresql)")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        data = self.root / "data"
        subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", "bark", "--auth=trust",
                                  "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, text=True)
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg://bark@127.0.0.1:{self.port}/postgres"
        self.log_path = self.root / "postgres.log"
        # fsync off: the server's files are thrown away; the tests are about transactions, not power cuts
        self.proc = subprocess.Popen(
            as_user + [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
                       "-k", str(self.root), "-c", "fsync=off", "-c", "max_connections=200",
                       "-c", "logging_collector=off"],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        import psycopg

        deadline = time.monotonic() + 120  # a start at load 8 can take tens of seconds
        while True:
            assert self.proc.poll() is None, f"postgres exited:\n{self.log_path.read_text()}"
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"postgres did not come up:\n{self.log_path.read_text()}")
                time.sleep(0.2)
        self._count = 0

    def _dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=bark dbname={dbname}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._count += 1
        name = f"studio_{os.getpid()}_{self._count}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://bark@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        import shutil

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, ws, monkeypatch):
    """A fresh database on the session's PostgreSQL server for one test, exported as
    BARK_STUDIO_DATABASE_URL (so `ws.db` and every subprocess use it)."""
    url = postgres_server.new_database()
    monkeypatch.setenv("BARK_STUDIO_DATABASE_URL", url)
    yield url
    if "db" in ws.__dict__:  # a cached engine: close its pooled connections
        ws.db.dispose()


# The longest modules on 2 cores (measured with --durations), longest first: under two xdist
# workers they start at once, beside the many short ones, instead of ending the run alone.
LONGEST_MODULES = ("test_real_path_e2e", "test_distributed_training", "test_experiments_metrics",
                   "test_training_stages_browser", "test_walkthrough_browser", "test_tag_probe",
                   "test_queue_recovery", "test_voice_library_browser", "test_listening_web",
                   "test_conditioning_learning", "test_conditioning_experiments", "test_curation_bombs")


def pytest_collection_modifyitems(config, items):
    """`make test` runs on two pytest-xdist workers, a module at a time (`--dist loadscope`, so a
    module's server or model is built once). The longest modules go first (LONGEST_MODULES), then
    the other modules holding a `slow` test, then the rest, each group in file order."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}

    def rank(item) -> tuple:
        name = item.module.__name__.rpartition(".")[2]
        longest = LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)
        return longest, item.module.__name__ not in slow_modules

    items.sort(key=rank)   # stable: file order within each group
