"""APScheduler drives the work; the database holds the truth, so a restart repeats and forgets nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.core.durations import parse_duration
from bot.settings import DEFAULT_FAST_LANE_THREADS, DEFAULT_SENDERS
from bot.usecases.appointments import announce_started_visits
from bot.usecases.call_tasks import remind_unclaimed
from bot.usecases.dispatch import SEND_LEASE_SECONDS, Dispatcher
from bot.usecases.lead_actions import escalate_unfinished_bookings
from bot.usecases.services import Services

log = logging.getLogger(__name__)


#: Threads waiting on the providers for a batch's groups, so vendor round trips overlap (per process).
SENDERS = DEFAULT_SENDERS
#: Threads sending new leads' instant touches, beside whatever batch is in progress.
FAST_LANE_WORKERS = DEFAULT_FAST_LANE_THREADS


class _SkipsSaidOnce(logging.LoggerAdapter):
    """APScheduler's log, with a job's skipped runs said once per job instead of at every skip.

    A run is skipped when the job is woken while it runs (the wake-up coalesces into the run in
    progress), which under load is many times a second: saying it each time buried everything else.
    """

    def __init__(self) -> None:
        super().__init__(logging.getLogger("apscheduler.scheduler"), {})
        self._said: set[str] = set()

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        if "maximum number of running instances" in str(msg):
            job_id = str(getattr(args[0], "id", args[0])) if args else ""
            if job_id in self._said:
                return
            self._said.add(job_id)
            msg = f"{msg}; later skips of this job are not logged"
        super().warning(msg, *args, **kwargs)  # type: ignore[arg-type]  # kwargs typed loosely here are the logging keywords LoggerAdapter takes


class WorkScheduler:
    """Runs due touches on a short tick, at once when woken, and a new lead's first touch on a lane of its own."""

    def __init__(
        self,
        services: Services,
        *,
        poll_seconds: float = 1.0,
        click_escalation_delay: str = "2h",
        claim_reminder_delay: str = "30m",
        send_lease_seconds: float = SEND_LEASE_SECONDS,
        senders: int = SENDERS,
        fast_lane_workers: int = FAST_LANE_WORKERS,
    ):
        self.services = services
        self.poll_seconds = poll_seconds
        self.dispatcher = Dispatcher(
            services, send_lease_seconds=send_lease_seconds, senders=senders, poll_seconds=poll_seconds
        )
        # Speed to lead: a new lead's instant text must not wait for a tick or for the batch in
        # progress (a wake-up would only coalesce into the running job).
        self._fast_lane = ThreadPoolExecutor(fast_lane_workers, thread_name_prefix="speed-to-lead")
        # New leads waiting for a fast-lane thread. Each thread takes all that wait, so under a burst
        # the lane claims and records them together instead of paying a claim per lead.
        self._waiting_leads: set[int] = set()
        self._waiting_guard = threading.Lock()
        self.click_delay = parse_duration(click_escalation_delay)
        self.claim_reminder_delay = parse_duration(claim_reminder_delay)
        # One instance of each job at a time; missed ticks collapse into one (the work is idempotent).
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            logger=_SkipsSaidOnce(),
        )
        self._dispatch_job = self._scheduler.add_job(
            self.dispatch_once, "interval", seconds=poll_seconds, id="dispatch"
        )
        self._scheduler.add_job(self.escalate_once, "interval", seconds=max(poll_seconds, 5), id="escalate")
        services.wakeups.connect(dispatcher=self.wake, lead=self.dispatch_lead)

    def add_periodic(self, job_id: str, work: Callable[[], object], *, seconds: float) -> Callable[[], None]:
        """Run more work on a tick (e.g. posting queued Slack notices); return a function that runs it now."""
        job = self._scheduler.add_job(work, "interval", seconds=seconds, id=job_id)

        def run_now() -> None:
            if self._scheduler.running:
                job.modify(next_run_time=datetime.now(UTC))

        return run_now

    def job_ids(self) -> tuple[str, ...]:
        """The ids of every job on the schedule (what `followup run` will do on its ticks)."""
        return tuple(job.id for job in self._scheduler.get_jobs())

    def start(self) -> None:
        self._scheduler.start()
        self.wake()

    def shutdown(self) -> None:
        self.dispatcher.stop()  # a long batch must not hold up a SIGTERM: the rest goes back to the queue
        self._fast_lane.shutdown(wait=True)
        self._scheduler.shutdown(wait=True)
        self.dispatcher.close()

    def wake(self) -> None:
        """Run the dispatcher now instead of at the next tick."""
        if self._scheduler.running:
            self._dispatch_job.modify(next_run_time=datetime.now(UTC))

    def dispatch_lead(self, lead_id: int) -> None:
        """Send what is due for this lead now, on the fast lane, beside any batch in progress."""
        if not self._scheduler.running:
            return  # not started, or shutting down: the next start's first tick sends it
        with self._waiting_guard:
            self._waiting_leads.add(lead_id)
        try:
            self._fast_lane.submit(self._send_waiting_leads)
        except RuntimeError:  # the lane closed between the check and the submit (shutdown)
            return

    def _send_waiting_leads(self) -> None:
        with self._waiting_guard:
            lead_ids, self._waiting_leads = self._waiting_leads, set()
        if not lead_ids:
            return  # an earlier thread took them along with its own
        try:
            report = self.dispatcher.run_leads(sorted(lead_ids))
        except Exception:  # noqa: BLE001 - nobody awaits this thread: log it, and let the next tick retry
            log.exception(
                "dispatch: sending %d new lead(s)' due touches at once failed; the next tick retries", len(lead_ids)
            )
            self.wake()
            return
        if report.handled:
            log.info(
                "dispatch (%d new lead(s)): %d sent, %d skipped, %d failed, %d retrying, %d rescheduled",
                len(lead_ids),
                report.sent,
                report.skipped,
                report.failed,
                report.retrying,
                report.rescheduled,
            )

    def dispatch_once(self) -> None:
        report = self.dispatcher.run_due()
        if report.handled:
            log.info(
                "dispatch: %d sent, %d skipped, %d failed, %d retrying, %d rescheduled",
                report.sent,
                report.skipped,
                report.failed,
                report.retrying,
                report.rescheduled,
            )
        self._wake_when_next_due()

    def _wake_when_next_due(self) -> None:
        """Run again the moment the next touch falls due, when that is sooner than the next tick.

        Without this a touch waits up to a whole tick past its due time before it is even seen.
        """
        due = self.dispatcher.next_due_at()
        if due is None:
            return
        wait = self.services.clock.real_seconds_until(due)
        if 0 < wait < self.poll_seconds and self._scheduler.running:
            self._dispatch_job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=wait))

    def escalate_once(self) -> None:
        with self.services.session_factory.begin() as session:
            now = self.services.clock.now()
            escalate_unfinished_bookings(session, self.services, now=now, delay=self.click_delay)
            announce_started_visits(session, self.services, now=now)
            # Each clinic's nudges wait for its own hours.
            for business in self.services.businesses:
                remind_unclaimed(session, now=now, after=self.claim_reminder_delay, business=business)
