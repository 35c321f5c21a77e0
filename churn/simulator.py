"""A seeded generator of a subscription business's operational exports (``churn generate``).

It stands in for the CRM, billing, network and support systems: every simulated day it drops the
day's exports into the raw zone, one folder per source and ingest date
(``<out>/<source>/ingest_date=YYYY-MM-DD/part-NNNN.{csv,json}``), as nightly exports would.

The hidden churn process (what a model has to discover)
-------------------------------------------------------
Each active customer has a daily cancellation hazard ``h = sigmoid(z)`` with

    z = -6.9 + contract (+1.0 month-to-month, -0.6 one year, -1.6 two year)
          - 0.35 * log(1 + tenure in months)
          + 0.6 * (monthly charges - 65) / 30
          + 0.45 [fiber] - 0.5 [no internet] + 0.35 [electronic check] + 0.2 [senior]
          - 0.25 [tech support] - 0.25 [online security]
          - 1.4 * (engagement - the customer's usual engagement)      # falling usage
          + 0.5 * recent late payments (decayed, ~60 days)
          + 0.35 * recent support tickets (decayed, ~30 days)
          + drift terms (price rise: +0.8 fading over 60 days; competitor: +0.7 for fiber customers)

Engagement is a latent mean-reverting walk; some customers enter a decline phase. Usage (sessions,
data, minutes) is a noisy Poisson/Gamma read-out of engagement, so the platform sees engagement only
through usage. Late payments, tickets and plan changes feed back into the hazard as above.

The oracle: for every customer active at day D the generator writes ``1 - (1 - h_D) ** horizon``,
the probability of cancelling within the label horizon given the state at D, to a side table
(``$CHURN_HOME/oracle``). The platform's jobs never read it; evaluation uses it to report how close a
model gets to the best achievable AUC.

Scale: customers are simulated in independent chunks (each with its own seeded stream), so memory
is bounded by the chunk size, not by the number of customers. The output for a given seed,
customer count and day count does not depend on anything else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churn.core import sources as S
from churn.core.sources import DEFECT_KINDS, DEFECT_MODES, DRIFT_KINDS
from churn.core.errors import InputError

log = logging.getLogger(__name__)

CHUNK = 250_000  # part of the output contract: changing it changes the generated data


@dataclass
class GeneratorConfig:
    customers: int
    start: dt.date
    days: int
    seed: int = 42
    out: str = ".churn/raw"
    oracle_dir: str | None = ".churn/oracle"
    horizon: int = 30
    drift: str | None = None
    drift_date: dt.date | None = None
    defects: tuple[str, ...] = ()
    defect_rate: float = 0.01
    #: "replace": a defect corrupts a true row (the row is lost to quarantine, as when an exporter
    #: mangles it); "add": the corrupted row is an extra copy beside the true one (garbage appended
    #: to an export), so every true row still arrives and the clean data stays as learnable as
    #: without defects. Late rows are always the true rows, delayed.
    defect_mode: str = "replace"
    #: daily arrivals as a share of the initial base (keeps the base roughly stable)
    arrival_rate: float = 0.0009

    def validate(self) -> None:
        if self.customers < 1:
            raise InputError(f"--customers must be at least 1, got {self.customers}")
        if self.days < 1:
            raise InputError(f"--days must be at least 1, got {self.days}")
        if self.drift and self.drift not in DRIFT_KINDS:
            raise InputError(f"--drift must be one of {', '.join(DRIFT_KINDS)}, got {self.drift!r}")
        if self.drift and self.drift_date is None:
            raise InputError("--drift needs --drift-date (the first day the drift applies)")
        bad = [d for d in self.defects if d not in DEFECT_KINDS]
        if bad:
            raise InputError(f"--defects: unknown kind(s) {', '.join(bad)}; known: {', '.join(DEFECT_KINDS)}")
        if self.defect_mode not in DEFECT_MODES:
            raise InputError(f"--defect-mode must be one of {', '.join(DEFECT_MODES)}, got {self.defect_mode!r}")
        if not 0 <= self.defect_rate <= 0.5:
            raise InputError(f"--defect-rate must be within [0, 0.5], got {self.defect_rate}")


@dataclass
class Manifest:
    config: dict
    rows: dict = field(default_factory=lambda: defaultdict(int))
    defects: dict = field(default_factory=lambda: defaultdict(int))
    churned: int = 0
    customers_total: int = 0


def _ids(prefix: str, nums: np.ndarray, width: int) -> np.ndarray:
    """'C0001' + zero-padded numbers, vectorised (and safe for empty arrays)."""
    if nums.size == 0:
        return np.zeros(0, dtype=f"<U{len(prefix) + width}")
    return np.char.add(prefix, np.char.zfill(nums.astype(str), width))


def _dates(start: dt.date, day_index: np.ndarray) -> np.ndarray:
    """Day offsets -> 'YYYY-MM-DD' strings (vectorised)."""
    base = np.datetime64(start, "D")
    return np.datetime_as_string(base + day_index.astype("timedelta64[D]"), unit="D")


class _Chunk:
    """The state of one chunk of customers, stepped one day at a time."""

    def __init__(self, cfg: GeneratorConfig, index: int, n0: int):
        self.cfg = cfg
        self.index = index
        self.rng = np.random.default_rng([cfg.seed, index])
        rng = self.rng
        expected_arrivals = n0 * cfg.arrival_rate * cfg.days
        cap = n0 + int(expected_arrivals + 6 * np.sqrt(expected_arrivals + 1) + 10)
        self.cap, self.n, self.n0 = cap, n0, n0
        self.active = np.zeros(cap, bool)
        self.active[:n0] = True
        self.exists = self.active.copy()
        # profile
        self.gender = rng.integers(0, 2, cap)
        self.senior = (rng.random(cap) < 0.16).astype(np.int8)
        self.partner = rng.random(cap) < 0.48
        self.dependents = (rng.random(cap) < 0.3) & self.partner | (rng.random(cap) < 0.05)
        tenure_months = np.where(rng.random(cap) < 0.15, rng.integers(0, 3, cap), rng.integers(1, 73, cap))
        self.signup = -(tenure_months * 30 + rng.integers(0, 30, cap))  # day offsets (negative = before start)
        long = tenure_months > 24
        u = rng.random(cap)
        self.contract = np.where(long, np.where(u < 0.35, 0, np.where(u < 0.6, 1, 2)),
                                 np.where(u < 0.72, 0, np.where(u < 0.9, 1, 2))).astype(np.int8)
        u = rng.random(cap)
        self.internet = np.where(u < 0.34, 0, np.where(u < 0.78, 1, 2)).astype(np.int8)
        has_net = self.internet != 2
        self.addons = (rng.random((6, cap)) < np.array([[0.29], [0.34], [0.34], [0.29], [0.38], [0.39]])) & has_net
        self.phone = rng.random(cap) < 0.9
        self.multi = self.phone & (rng.random(cap) < 0.47)
        self.paperless = rng.random(cap) < 0.59
        u = rng.random(cap)
        self.payment = np.where(u < 0.34, 0, np.where(u < 0.57, 1, np.where(u < 0.79, 2, 3))).astype(np.int8)
        self.region = rng.integers(0, len(S.REGIONS), cap).astype(np.int8)
        self.charges = self._price()
        # latent behaviour
        self.mu = rng.normal(0, 0.3, cap)
        self.eng = self.mu + rng.normal(0, 0.15, cap)
        self.decline_until = np.full(cap, -1, np.int32)
        self.decline_rate = np.zeros(cap)
        self.reliability = rng.beta(6, 1.5, cap)  # probability of paying on time
        self.late_recent = np.zeros(cap)
        self.tickets_recent = np.zeros(cap)
        self.bill_day = rng.integers(0, 30, cap)
        self.competitor_shift = np.zeros(cap)
        # pending events: invoices waiting for payment, tickets waiting for resolution
        self.inv = {k: np.zeros(0, dtype=t) for k, t in
                    (("cust", np.int64), ("id", np.int64), ("issued", np.int32), ("due", np.int32),
                     ("pay", np.int32), ("amount", float), ("paid_amt", float), ("late_marked", bool))}
        self.tix = {k: np.zeros(0, dtype=t) for k, t in
                    (("cust", np.int64), ("id", np.int64), ("cat", np.int8), ("opened", np.int32), ("resolve", np.int32))}
        self.next_invoice = 0
        self.next_ticket = 0
        self.next_change = 0
        self.price_shock = np.zeros(cap)

    # ---- helpers --------------------------------------------------------------------
    def _price(self, idx=None) -> np.ndarray:
        sl = slice(None) if idx is None else idx
        net = np.array([45.0, 70.0, 0.0])[self.internet[sl]]
        base = 20.0 * self.phone[sl] + 5.0 * self.multi[sl] + net
        add = (self.addons[:, sl] * np.array([[5.0], [5.0], [5.0], [5.0], [10.0], [10.0]])).sum(0)
        noise = self.rng.normal(0, 2.0, base.shape)
        return np.round(np.maximum(18.25, base + add + noise), 2)

    def ids(self, idx: np.ndarray) -> np.ndarray:
        return _ids(f"C{self.index:04d}", idx, 6)

    def hazard(self, day: int) -> np.ndarray:
        tenure_m = np.maximum(0, day - self.signup) / 30.0
        z = (-6.9 + np.array([1.0, -0.6, -1.6])[self.contract]
             - 0.35 * np.log1p(tenure_m)
             + 0.6 * (self.charges - 65.0) / 30.0
             + np.array([0.0, 0.45, -0.5])[self.internet]
             + 0.35 * (self.payment == 0) + 0.2 * self.senior
             - 0.25 * self.addons[3] - 0.25 * self.addons[0]
             - 1.4 * (self.eng - self.mu)
             + 0.5 * self.late_recent + 0.35 * self.tickets_recent
             + self.price_shock + self.competitor_shift)
        return 1.0 / (1.0 + np.exp(-z))

    # ---- one simulated day ----------------------------------------------------------
    def step(self, day: int, date_str: str, drift_day: int | None) -> dict[str, pd.DataFrame]:
        cfg, rng = self.cfg, self.rng
        out: dict[str, pd.DataFrame] = {}
        changed = np.zeros(self.cap, bool)
        if day == 0:
            changed[: self.n] = True
        # arrivals
        k = rng.poisson(self.n0 * cfg.arrival_rate) if day > 0 else 0
        k = min(k, self.cap - self.n)
        if k:
            new = np.arange(self.n, self.n + k)
            self.n += k
            self.active[new] = self.exists[new] = True
            self.signup[new] = day
            self.contract[new] = np.where(rng.random(k) < 0.8, 0, 1)
            changed[new] = True
        act = np.flatnonzero(self.active)

        # drift events
        if drift_day is not None and day == drift_day and cfg.drift == "price_rise":
            old = self.charges[act].copy()
            self.charges[act] = np.round(old * 1.10, 2)
            self.price_shock[act] = 0.8
            out["plan_changes"] = self._changes(act, "price_change", self.contract[act], self.contract[act], old, date_str)
            changed[act] = True
        self.price_shock *= np.exp(-1 / 60)
        if drift_day is not None and day >= drift_day and cfg.drift == "competitor":
            self.competitor_shift[act] = 0.7 * (self.internet[act] == 1)
            self.mu[act] -= 0.004 * (self.internet[act] == 1)

        # engagement walk and decline phases
        start_decline = act[rng.random(act.size) < 0.0012]
        self.decline_until[start_decline] = day + rng.integers(20, 60, start_decline.size)
        self.decline_rate[start_decline] = rng.uniform(0.01, 0.04, start_decline.size)
        declining = self.decline_until[act] >= day
        self.eng[act] += np.where(declining, -self.decline_rate[act],
                                  0.08 * (self.mu[act] - self.eng[act])) + rng.normal(0, 0.05, act.size)

        # usage read-out of engagement
        lam = np.exp(self.eng[act])
        sessions = rng.poisson(4.0 * lam)
        data_mb = np.where(self.internet[act] != 2, np.round(sessions * rng.gamma(2.0, 25.0, act.size), 1), 0.0)
        minutes = rng.poisson(25.0 * lam * self.phone[act])
        out["usage"] = pd.DataFrame({"customer_id": self.ids(act), "usage_date": date_str,
                                     "sessions": sessions, "data_mb": data_mb, "minutes": minutes})

        # billing: issue invoices on the billing day, payments when scheduled
        inv_rows = []
        billing = act[((day - self.bill_day[act]) % 30 == 0) & (day > self.signup[act])]
        if billing.size:
            on_time = rng.random(billing.size) < self.reliability[billing] * np.exp(-0.3 * np.maximum(0, self.mu[billing] - self.eng[billing]))
            delay = np.where(on_time, rng.integers(1, 14, billing.size), 14 + rng.geometric(0.12, billing.size))
            ids = self.next_invoice + np.arange(billing.size)
            self.next_invoice += billing.size
            amt = self.charges[billing]
            new = dict(cust=billing, id=ids, issued=np.full(billing.size, day, np.int32),
                       due=np.full(billing.size, day + 14, np.int32), pay=(day + delay).astype(np.int32),
                       amount=amt, paid_amt=amt, late_marked=np.zeros(billing.size, bool))
            self.inv = {kk: np.concatenate([self.inv[kk], new[kk]]) for kk in self.inv}
            inv_rows.append(self._invoices(np.flatnonzero(np.isin(self.inv["id"], ids)), date_str, paid=False))
        late_now = (self.inv["due"] < day) & (self.inv["pay"] > self.inv["due"]) & ~self.inv["late_marked"]
        self.late_recent[self.inv["cust"][late_now]] += 1
        self.inv["late_marked"] |= late_now
        self.late_recent *= np.exp(-1 / 60)
        paying = np.flatnonzero(self.inv["pay"] == day)
        if paying.size:
            inv_rows.append(self._invoices(paying, date_str, paid=True))
            keep = self.inv["pay"] != day
            self.inv = {kk: v[keep] for kk, v in self.inv.items()}
        out["invoices"] = pd.concat(inv_rows, ignore_index=True) if inv_rows else _empty("invoices")

        # support tickets
        p_ticket = 0.004 * (1 + 1.0 * (self.internet[act] == 1)) * np.exp(-0.8 * (self.eng[act] - self.mu[act]))
        opening = act[rng.random(act.size) < p_ticket]
        tix_rows = []
        if opening.size:
            cat = rng.choice(len(S.TICKET_CATEGORIES), opening.size, p=[0.3, 0.3, 0.2, 0.12, 0.08]).astype(np.int8)
            ids = self.next_ticket + np.arange(opening.size)
            self.next_ticket += opening.size
            new = dict(cust=opening, id=ids, cat=cat, opened=np.full(opening.size, day, np.int32),
                       resolve=(day + rng.geometric(0.35, opening.size) - 1).astype(np.int32))
            self.tix = {kk: np.concatenate([self.tix[kk], new[kk]]) for kk in self.tix}
            self.tickets_recent[opening] += 1
            tix_rows.append(self._tickets(np.flatnonzero(np.isin(self.tix["id"], ids) & (self.tix["resolve"] != day)), date_str, False))
        self.tickets_recent *= np.exp(-1 / 30)
        resolving = np.flatnonzero(self.tix["resolve"] == day)
        if resolving.size:
            tix_rows.append(self._tickets(resolving, date_str, True))
            keep = self.tix["resolve"] != day
            self.tix = {kk: v[keep] for kk, v in self.tix.items()}
        out["tickets"] = pd.concat(tix_rows, ignore_index=True) if tix_rows else _empty("tickets")

        # plan changes
        chg = act[rng.random(act.size) < 0.0015]
        if chg.size:
            kind = rng.integers(0, 4, chg.size)
            old_c, old_m = self.contract[chg].copy(), self.charges[chg].copy()
            up = (kind == 0) & (old_c < 2)
            down = (kind == 1) & (old_c > 0)
            self.contract[chg[up]] += 1
            self.contract[chg[down]] -= 1
            add = kind == 2
            rem = kind == 3
            self.charges[chg[add]] = np.round(self.charges[chg[add]] + rng.uniform(5, 15, add.sum()), 2)
            self.charges[chg[rem]] = np.round(np.maximum(18.25, self.charges[chg[rem]] - rng.uniform(5, 15, rem.sum())), 2)
            names = np.array(["contract_upgrade", "contract_downgrade", "add_service", "remove_service"])[kind]
            real = up | down | add | rem
            frame = self._changes(chg[real], names[real], old_c[real], self.contract[chg[real]], old_m[real], date_str)
            out["plan_changes"] = pd.concat([out["plan_changes"], frame], ignore_index=True) if "plan_changes" in out else frame
            changed[chg[real]] = True
        out.setdefault("plan_changes", _empty("plan_changes"))

        # customers export: new and changed profiles
        out["customers"] = self._customers(np.flatnonzero(changed & self.active), date_str)

        # churn: the hazard at the end of day D drives cancellation on D+1..; the oracle reports it
        h = self.hazard(day)[act]
        oracle = pd.DataFrame({"customer_id": self.ids(act), "p_churn": 1.0 - (1.0 - h) ** cfg.horizon})
        churn = act[rng.random(act.size) < h]
        self.pending_cancel = churn
        return out, oracle

    def cancellations(self, date_str: str) -> pd.DataFrame:
        """Cancellations decided yesterday take effect today."""
        idx = getattr(self, "pending_cancel", np.zeros(0, np.int64))
        self.pending_cancel = np.zeros(0, np.int64)
        if idx.size == 0:
            return _empty("cancellations")
        self.active[idx] = False
        rng = self.rng
        price_driven = (self.charges[idx] > 80) | (self.price_shock[idx] > 0.3)
        reason = np.where(price_driven & (rng.random(idx.size) < 0.6), 0,
                          np.where(self.competitor_shift[idx] > 0, 1, rng.integers(1, len(S.CANCEL_REASONS), idx.size)))
        return pd.DataFrame({"customer_id": self.ids(idx), "cancel_date": date_str,
                             "reason": np.array(S.CANCEL_REASONS)[reason]})

    def _invoices(self, rows: np.ndarray, date_str: str, paid: bool) -> pd.DataFrame:
        base = np.datetime64(self.cfg.start, "D")
        iv = self.inv
        return pd.DataFrame({
            "invoice_id": _ids(f"I{self.index:04d}", iv["id"][rows], 9),
            "customer_id": self.ids(iv["cust"][rows]),
            "issued_date": np.datetime_as_string(base + iv["issued"][rows].astype("timedelta64[D]")),
            "due_date": np.datetime_as_string(base + iv["due"][rows].astype("timedelta64[D]")),
            "amount": iv["amount"][rows],
            "paid_date": pd.array([date_str if paid else None] * rows.size, dtype="string"),
            "paid_amount": pd.array(iv["paid_amt"][rows] if paid else [None] * rows.size, dtype="Float64"),
            "updated_at": date_str,
        })

    def _tickets(self, rows: np.ndarray, date_str: str, resolved: bool) -> pd.DataFrame:
        base = np.datetime64(self.cfg.start, "D")
        tx = self.tix
        return pd.DataFrame({
            "ticket_id": _ids(f"T{self.index:04d}", tx["id"][rows], 8),
            "customer_id": self.ids(tx["cust"][rows]),
            "category": np.array(S.TICKET_CATEGORIES)[tx["cat"][rows]],
            "opened_at": np.datetime_as_string(base + tx["opened"][rows].astype("timedelta64[D]")),
            "resolved_at": pd.array([date_str if resolved else None] * rows.size, dtype="string"),
            "updated_at": date_str,
        })

    def _changes(self, idx, kind, old_c, new_c, old_m, date_str) -> pd.DataFrame:
        ids = self.next_change + np.arange(idx.size)
        self.next_change += idx.size
        return pd.DataFrame({
            "change_id": _ids(f"P{self.index:04d}", ids, 8),
            "customer_id": self.ids(idx),
            "change_date": date_str,
            "change_type": kind,
            "old_contract": np.array(S.CONTRACTS)[old_c],
            "new_contract": np.array(S.CONTRACTS)[new_c],
            "old_monthly_charges": old_m,
            "new_monthly_charges": self.charges[idx],
        })

    def _customers(self, idx: np.ndarray, date_str: str) -> pd.DataFrame:
        yn = np.array(["No", "Yes"])
        net = self.internet[idx] != 2
        addon = lambda j: np.where(net, yn[self.addons[j, idx].astype(int)], "No internet service")  # noqa: E731
        return pd.DataFrame({
            "customer_id": self.ids(idx),
            "gender": np.array(["Female", "Male"])[self.gender[idx]],
            "senior_citizen": self.senior[idx],
            "partner": yn[self.partner[idx].astype(int)],
            "dependents": yn[self.dependents[idx].astype(int)],
            "signup_date": _dates(self.cfg.start, self.signup[idx]),
            "contract": np.array(S.CONTRACTS)[self.contract[idx]],
            "phone_service": yn[self.phone[idx].astype(int)],
            "multiple_lines": np.where(self.phone[idx], yn[self.multi[idx].astype(int)], "No phone service"),
            "internet_service": np.array(S.INTERNET)[self.internet[idx]],
            "online_security": addon(0),
            "online_backup": addon(1),
            "device_protection": addon(2),
            "tech_support": addon(3),
            "streaming_tv": addon(4),
            "streaming_movies": addon(5),
            "paperless_billing": yn[self.paperless[idx].astype(int)],
            "payment_method": np.array(S.PAYMENT_METHODS)[self.payment[idx]],
            "monthly_charges": self.charges[idx],
            "region": np.array(S.REGIONS)[self.region[idx]],
            "updated_at": date_str,
        })


def _empty(source: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in S.SOURCES[source].names})


class _Defects:
    """Injects the defects real exports have, and counts them in the manifest."""

    DATE_COLS = {"customers": "signup_date", "usage": "usage_date", "invoices": "due_date",
                 "tickets": "opened_at", "plan_changes": "change_date", "cancellations": "cancel_date"}
    NULL_COLS = {"customers": "contract", "usage": "sessions", "invoices": "amount",
                 "tickets": "category", "plan_changes": "new_monthly_charges", "cancellations": "reason"}
    CATEGORY = {"customers": ("payment_method", "Crypto wallet"), "tickets": ("category", "unknown"),
                "plan_changes": ("change_type", "teleport"), "cancellations": ("reason", "???")}
    LATE_SOURCES = ("usage", "tickets", "cancellations")

    def __init__(self, cfg: GeneratorConfig, manifest: Manifest, chunk: int):
        self.cfg, self.m = cfg, manifest
        self.rng = np.random.default_rng([cfg.seed, chunk, 7])
        self.late: dict[int, dict[str, list[pd.DataFrame]]] = defaultdict(lambda: defaultdict(list))
        self._only: np.ndarray | None = None

    def _pick(self, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, int)
        k = self.rng.binomial(n, self.cfg.defect_rate)
        return self.rng.choice(n, k, replace=False)

    def _targets(self, n: int) -> np.ndarray:
        """Rows a corrupting defect hits: any row ("replace"), or only the appended copies ("add")."""
        if self._only is None:
            return self._pick(n)
        if self._only.size == 0:
            return self._only
        k = min(self._only.size, max(1, self.rng.binomial(self._only.size, 1 / 4)))
        return self.rng.choice(self._only, k, replace=False)

    def apply(self, source: str, day: int, df: pd.DataFrame) -> pd.DataFrame:
        kinds = self.cfg.defects
        if not kinds or df.empty:
            return df
        df = df.copy()
        if "late_rows" in kinds and source in self.LATE_SOURCES and day + 3 < self.cfg.days:
            rows = self._pick(len(df))
            if rows.size:
                lag = int(self.rng.integers(1, 4))
                self.late[day + lag][source].append(df.iloc[rows])
                df = df.drop(df.index[rows])
                self.m.defects[f"{source}.late_rows"] += rows.size
        true_rows = len(df)
        if self.cfg.defect_mode == "add":  # corrupt copies of true rows, appended after them
            copies = self._pick(true_rows)
            df = pd.concat([df, df.iloc[copies]], ignore_index=True)
            self._only = np.arange(true_rows, len(df))
        else:
            self._only = None
        if "nulls" in kinds:
            rows = self._targets(len(df))
            col = self.NULL_COLS[source]
            df[col] = df[col].astype(object)
            df.iloc[rows, df.columns.get_loc(col)] = None
            self.m.defects[f"{source}.nulls.{col}"] += rows.size
        if "bad_dates" in kinds:
            rows = self._targets(len(df))
            col = self.DATE_COLS[source]
            df.iloc[rows, df.columns.get_loc(col)] = "31/02/2026"
            self.m.defects[f"{source}.bad_dates.{col}"] += rows.size
        if "future_dates" in kinds and source != "customers":
            rows = self._targets(len(df))
            col = S.SOURCES[source].event_time
            future = (self.cfg.start + dt.timedelta(days=day + 400)).isoformat()
            df.iloc[rows, df.columns.get_loc(col)] = future
            self.m.defects[f"{source}.future_dates.{col}"] += rows.size
        if "unknown_categories" in kinds and source in self.CATEGORY:
            rows = self._targets(len(df))
            col, value = self.CATEGORY[source]
            df.iloc[rows, df.columns.get_loc(col)] = value
            self.m.defects[f"{source}.unknown_categories.{col}"] += rows.size
        if "duplicates" in kinds:
            rows = self._pick(len(df))
            df = pd.concat([df, df.iloc[rows]], ignore_index=True)
            self.m.defects[f"{source}.duplicates"] += rows.size
        return df

    def arrivals(self, source: str, day: int) -> list[pd.DataFrame]:
        return self.late.get(day, {}).get(source, [])


def _write(df: pd.DataFrame, source: str, folder: Path, part: int) -> str:
    """One data file of a drop; its name."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = S.SOURCES[source]
    name = f"part-{part:04d}.{spec.fmt}"
    if spec.fmt == "csv":
        table = pa.Table.from_pandas(df.astype({c: "string" for c in df.columns if df[c].dtype == object}),
                                     preserve_index=False)
        pacsv.write_csv(table, folder / name)
    else:
        df.to_json(folder / name, orient="records", lines=True)
    return name


def generate(cfg: GeneratorConfig, progress=None) -> Manifest:
    """Generate ``cfg.days`` daily drops for ``cfg.customers`` customers into ``cfg.out``."""
    cfg.validate()
    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)  # a generation is one consistent history; never mix two
    if cfg.oracle_dir:
        shutil.rmtree(cfg.oracle_dir, ignore_errors=True)
    out.mkdir(parents=True)
    manifest = Manifest(config={k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(cfg).items()})
    drift_day = (cfg.drift_date - cfg.start).days if cfg.drift else None
    chunks = [(i, min(CHUNK, cfg.customers - i * CHUNK)) for i in range((cfg.customers + CHUNK - 1) // CHUNK)]
    dates = [(cfg.start + dt.timedelta(days=d)).isoformat() for d in range(cfg.days)]
    t0 = time.time()
    files: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # (source, date) -> file -> rows
    for ci, n0 in chunks:
        chunk = _Chunk(cfg, ci, n0)
        defects = _Defects(cfg, manifest, ci)
        for day, date_str in enumerate(dates):
            frames = {"cancellations": chunk.cancellations(date_str)}
            day_frames, oracle = chunk.step(day, date_str, drift_day)
            frames.update(day_frames)
            for source in S.SOURCES:
                df = defects.apply(source, day, frames[source])
                late = defects.arrivals(source, day)
                if late:
                    df = pd.concat([df, *late], ignore_index=True)
                files[source, date_str][_write(df, source, out / source / f"ingest_date={date_str}", ci)] = len(df)
                manifest.rows[source] += len(df)
            if cfg.oracle_dir:
                folder = Path(cfg.oracle_dir) / f"snapshot_date={date_str}"
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pandas(oracle, preserve_index=False), folder / f"part-{ci:04d}.parquet")
            if progress:
                progress(ci, len(chunks), day, cfg.days, time.time() - t0)
        manifest.customers_total += chunk.n
        manifest.churned += int((chunk.exists & ~chunk.active).sum())
    # each drop's completion marker, written last as an exporter does (churn.core.sources.MARKER)
    for (source, date_str), counts in files.items():
        (out / source / f"ingest_date={date_str}" / S.MARKER).write_text(S.marker_json(source, date_str, counts))
    (out / "_manifest.json").write_text(json.dumps(
        {"config": manifest.config, "rows": dict(manifest.rows), "defects": dict(manifest.defects),
         "customers_total": manifest.customers_total, "churned": manifest.churned,
         "seconds": round(time.time() - t0, 2)}, indent=2))
    return manifest
