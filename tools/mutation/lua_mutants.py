"""Lua mutation testing: small realistic bugs planted in the server-side functions.

    python -m tools.mutation.lua_mutants                  every mutant; writes the report
    python -m tools.mutation.lua_mutants --list           the declared mutants
    python -m tools.mutation.lua_mutants --only ID ...    these mutants (report untouched)
    python -m tools.mutation.lua_mutants --exclude tests/core/consume/test_boundaries.py
                                                          leave tests out (what they add)

Each mutant names one exact snippet of a file in ``phantom_notebook/core/backend/lua/``,
its replacement, what bug that is, and the tests that should catch it. The run (see
``lua_harness.py``) first checks every snippet occurs exactly once and that the unmutated
copy passes every selection, then runs each mutant's tests in its own copy of the working
tree, two at a time, and writes ``reports/mutation-lua.md`` and ``reports/mutation-lua.json``
(killed / survived per file, each survivor's diff and whether it is equivalent or needs a
test, and the kill rate of every full run so far).

Exit status: 0 when the kill rate is at least ``--fail-under`` percent (90), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .lua_harness import ROOT, Mutant, check_snippets, run_all, write_report

QK = "tests/core/test_queue_kinds.py"
FT = "tests/core/consume/test_fault_tolerance.py"
WB = "tests/core/consume/test_worker_behaviour.py"
FC = "tests/core/consume/test_flow_control.py"
RF = "tests/core/consume/test_redis_faults.py"
GR = "tests/core/results/test_groups.py"
RQ = "tests/core/results/test_requests.py"
CA = "tests/core/admin/test_cancel.py"
PF = "tests/core/publish/test_publish_fastpath.py"
RC = "tests/core/security/test_replay_claims.py"
AC = "tests/core/security/test_access.py"
SC = "tests/core/schedule/test_schedules.py"
# the boundary tests of issue #22
CB = "tests/core/consume/test_boundaries.py"
PB = "tests/core/publish/test_boundaries.py"
JB = "tests/core/results/test_join_boundaries.py"


def t(*selection: str) -> tuple[str, ...]:
    return selection


def _fetch() -> list[Mutant]:
    f = "fetch.lua"
    promote = "call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, promote_limit)"
    dlq = t(f"{RF}::test_a_poison_message_that_kills_its_worker_ends_in_the_dlq_and_others_flow",
            f"{AC}::test_reclaim_and_dead_letter_run_under_the_analyst_trimming_does_not",
            f"{GR}::test_a_member_that_keeps_killing_its_worker_fails_its_group_without_"
            "waiting_for_the_deadline",
            f"{CB}::test_a_delivery_at_max_deliveries_is_handed_out_and_one_past_it_is_dead_"
            "lettered")
    delayed = t(f"{QK}::test_delayed_message_is_never_early_and_arrives_within_100ms",
                f"{CB}::test_a_delayed_message_is_not_promoted_one_millisecond_before_it_is_due",
                f"{CB}::test_a_deliver_at_message_is_promoted_exactly_at_its_rounded_up_due_ms")
    # (not test_flow_control's 3-process global concurrency test: its "at least 3 at
    # once" fails now and then on a loaded machine, and a flaky test kills mutants)
    running = t(f"{CB}::test_global_concurrency_grants_exactly_the_room_left_and_a_lapsed_"
                "lease_frees_its_slot")
    gcra = t(f"{FC}::test_a_rate_limit_holds_its_rate_after_the_burst",
             f"{CB}::test_a_fresh_rate_limit_grants_exactly_its_burst_however_long_it_was_idle")
    return [
        Mutant("fetch-promote-1ms-early", f, promote, promote.replace("now,", "now + 1,"),
               "delayed messages are promoted 1 ms before they are due", delayed),
        Mutant("fetch-promote-1ms-late", f, promote, promote.replace("now,", "'(' .. now,"),
               "a delayed message due exactly now is not promoted yet", delayed),
        Mutant("fetch-promote-keeps-member", f,
               "  call('ZREM', KEYS[5], member)\n", "",
               "a promoted message stays in the delayed set (promoted again next fetch)",
               t(f"{QK}::test_two_promoters_never_deliver_a_delayed_message_twice",
                 f"{CB}::test_a_delayed_message_is_not_promoted_one_millisecond_before_it_is_"
                 "due")),
        Mutant("fetch-promote-wrong-level", f,
               "call('XADD', KEYS[level + 1], '*', 'm', string.sub(member, 2))",
               "call('XADD', KEYS[level + 2], '*', 'm', string.sub(member, 2))",
               "a promoted message lands one priority level lower",
               t(QK, f"{CB}::test_a_delayed_message_is_promoted_into_its_own_priority_level")),
        Mutant("fetch-dlq-one-delivery-late", f, "if n > max_deliveries then",
               "if n > max_deliveries + 1 then",
               "dead-letters at max + 2 deliveries (one delivery too many)", dlq),
        Mutant("fetch-dlq-one-delivery-early", f, "if n > max_deliveries then",
               "if n >= max_deliveries then",
               "dead-letters the delivery at max deliveries instead of handing it out", dlq),
        Mutant("fetch-dlq-keeps-pending", f,
               "                    '', n, consumer, group, now, now, sid)\n"
               "        call('XACK', stream, group, sid)\n",
               "                    '', n, consumer, group, now, now, sid)\n",
               "a dead-lettered entry stays pending (dead-lettered again on every reclaim)",
               dlq),
        Mutant("fetch-dead-requests-need-both-headers", f,
               "if string.find(envelope, '\"pn-reply\"', 1, true) or",
               "if string.find(envelope, '\"pn-reply\"', 1, true) and",
               "a request or group member dead-lettered by fetch is not answered",
               t(f"{GR}::test_a_member_that_keeps_killing_its_worker_fails_its_group_without_"
                 "waiting_for_the_deadline",
                 f"{CB}::test_a_request_dead_lettered_by_fetch_is_returned_to_be_answered")),
        Mutant("fetch-reclaim-ignores-count", f,
               "        out[#out + 1] = n\n        remaining = remaining - 1\n",
               "        out[#out + 1] = n\n",
               "reclaimed deliveries do not count against the batch size",
               t(f"{CB}::test_a_fetch_hands_out_at_most_its_count_reclaimed_entries_included")),
        Mutant("fetch-pause-needs-both", f,
               "call('HGET', KEYS[9], 'paused') or call('HGET', KEYS[9], 'paused:' .. group)",
               "call('HGET', KEYS[9], 'paused') and call('HGET', KEYS[9], 'paused:' .. group)",
               "pausing one group (or the whole queue alone) stops nothing",
               t(f"{FC}::test_pausing_one_group_of_a_broadcast_queue_leaves_the_other_group_"
                 "running",
                 f"{FC}::test_pausing_stops_consumers_within_one_fetch_cycle_and_resuming_"
                 "loses_nothing")),
        Mutant("fetch-gcra-burst-minus-one", f,
               "math.floor((clock + tau - tat) / interval) + 1",
               "math.floor((clock + tau - tat) / interval)",
               "the rate limit's burst is one delivery short", gcra),
        Mutant("fetch-gcra-idle-credit", f,
               "tat = math.max(tonumber(call('HGET', KEYS[10], limiter) or 0), clock)",
               "tat = tonumber(call('HGET', KEYS[10], limiter) or clock)",
               "an idle limiter banks unlimited credit (no floor at now)", gcra),
        Mutant("fetch-leases-never-lapse", f,
               "  call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now)"
               "  -- leases of crashed consumers lapse\n", "",
               "a crashed consumer's lease never lapses: its slot is lost for good", running),
        Mutant("fetch-room-plus-one", f,
               "local room = max_running - call('ZCARD', KEYS[11])",
               "local room = max_running - call('ZCARD', KEYS[11]) + 1",
               "global concurrency lets one more delivery run than allowed", running),
    ]


def _publish() -> list[Mutant]:
    f = "publish.lua"
    window = t(f"{PB}::test_a_dedup_key_seen_in_the_previous_bucket_is_a_duplicate_and_after_"
               "the_window_it_is_not")
    return [
        Mutant("publish-single-ignores-previous-bucket", f,
               "    first = call('HGET', keys[9], field)\n", "    first = false\n",
               "a one-message publish ignores the previous dedup window's bucket",
               t(f"{WB}::test_a_duplicate_dedup_key_returns_the_first_id_and_writes_nothing",
                 f"{FT}::test_content_hash_dedup_suppresses_identical_payloads_within_the_"
                 "window", *window)),
        Mutant("publish-batch-ignores-previous-bucket", f,
               "known[s + j - 1] = prev[j] or cur[j]", "known[s + j - 1] = cur[j]",
               "a batch publish ignores the previous dedup window's bucket",
               t(f"{PF}::test_batched_dedup_matches_one_by_one_semantics", *window)),
        Mutant("publish-retry-token-ignores-previous-bucket", f,
               "if call('HGET', keys[9], token) or call('HSETNX', keys[8], token, '1') == 0",
               "if call('HSETNX', keys[8], token, '1') == 0",
               "a re-sent batch call after a bucket boundary is written twice",
               t(f"{PF}::test_a_retried_call_without_dedup_keys_writes_none_of_its_messages_"
                 "again",
                 f"{PB}::test_a_call_resent_just_after_a_dedup_bucket_boundary_writes_nothing_"
                 "again")),
        Mutant("publish-bucket-lives-one-window", f,
               "        call('PEXPIRE', keys[8], 2 * window)\n      else",
               "        call('PEXPIRE', keys[8], window)\n      else",
               "a dedup bucket expires after one window instead of two", window),
        Mutant("publish-batch-repeat-not-duplicate", f,
               "local first = known[j] or claimed[field]", "local first = known[j]",
               "a key repeated inside one batch is written twice",
               t(f"{WB}::test_a_duplicate_inside_one_batch_gets_the_first_id")),
        Mutant("publish-due-times-shifted", f, "local due_at = 9 + 3 * n",
               "local due_at = 10 + 3 * n",
               "each delayed message of a batch gets the next one's due time",
               t(f"{QK}::test_two_promoters_never_deliver_a_delayed_message_twice",
                 f"{PB}::test_every_delayed_message_of_a_batch_is_stored_at_its_own_due_ms")),
        Mutant("publish-single-critical-not-delayed", f,
               "  if level >= 4 then\n    call('ZADD', keys[5], argv[12]",
               "  if level > 4 then\n    call('ZADD', keys[5], argv[12]",
               "a delayed CRITICAL message (digit 4) is not delayed (one-message path)",
               t(f"{QK}::test_delayed_message_is_never_early_and_arrives_within_100ms",
                 f"{PB}::test_a_delayed_message_of_every_priority_waits_in_the_delayed_set")),
        Mutant("publish-full-at-max", "includes/depth.lua", "if d + n > max_size then",
               "if d + n >= max_size then",
               "max_queue_size refuses the message that would make the queue exactly full",
               t(f"{FT}::test_a_full_queue_refuses_then_accepts_once_consumers_make_room",
                 f"{WB}::test_a_batch_that_does_not_fit_raises_queue_full_and_writes_nothing",
                 f"{WB}::test_delayed_messages_count_towards_the_queue_size",
                 f"{PB}::test_a_queue_fills_exactly_to_max_queue_size_and_not_one_past_it")),
        Mutant("publish-full-ignores-batch-size", "includes/depth.lua",
               "if d + n > max_size then", "if d + 1 > max_size then",
               "a batch that does not fit is written when one more message would",
               t(f"{WB}::test_a_batch_that_does_not_fit_raises_queue_full_and_writes_nothing",
                 f"{PB}::test_a_queue_fills_exactly_to_max_queue_size_and_not_one_past_it")),
    ]


def _settle() -> list[Mutant]:
    f = "settle.lua"
    late = t(f"{CB}::test_a_late_retry_after_another_consumer_took_the_message_writes_nothing",
             f"{CB}::test_a_late_dead_letter_after_another_consumer_took_the_message_writes_"
             "nothing",
             f"{CB}::test_a_late_result_after_another_consumer_took_the_message_is_not_stored")
    return [
        Mutant("settle-retry-without-ack", f, "  if finish(level, sid) == 1 then",
               "  if finish(level, sid) >= 0 then",
               "a retry is re-scheduled even when its XACK found nothing (a late settle)",
               t(f"{FT}::test_a_handler_failing_twice_then_succeeding_is_processed_once_after_"
                 "backoff", f"{WB}::test_extending_the_lease_keeps_a_long_handler_s_message_"
                 "from_a_second_worker", *late)),
        Mutant("settle-dead-without-ack", f, "if finish(ARGV[p], ARGV[p + 1]) == 1 then",
               "if finish(ARGV[p], ARGV[p + 1]) >= 0 then",
               "a dead letter is written even when its XACK found nothing (a late settle)",
               t(f"{FT}::test_an_always_failing_message_is_dead_lettered_after_max_retries_"
                 "plus_one_attempts", *late)),
        Mutant("settle-result-without-ack", f, "store = finish(level, sid) == 1",
               "store = finish(level, sid) >= 0",
               "a result is stored even when its ack found nothing (a late settle)",
               t(RQ, *late)),
        Mutant("settle-ignores-the-holder", f,
               "if not held or held[2] ~= consumer then return 0 end",
               "if not held then return 0 end",
               "a consumer whose lease lapsed settles the entry another consumer now holds",
               late),
        Mutant("settle-retry-due-now-waits", f, "if due > now then", "if due >= now then",
               "a retry due now waits in the delayed set instead of its stream",
               t(f"{CB}::test_a_retry_due_now_is_ready_at_once_and_one_due_later_waits")),
        Mutant("settle-retry-wrong-level", f,
               "      call('XADD', KEYS[tonumber(level) + 1], '*', 'm', env)",
               "      call('XADD', KEYS[tonumber(level) + 2], '*', 'm', env)",
               "a retry due now is re-queued one priority level lower",
               t(f"{FT}::test_a_handler_failing_twice_then_succeeding_is_processed_once_after_"
                 "backoff",
                 f"{CB}::test_a_retry_due_now_is_ready_at_once_and_one_due_later_waits")),
        Mutant("settle-dead-result-dropped", f,
               "    died[ARGV[p + 1]] = true\n", "",
               "a request dead-lettered by settle never gets its failure stored",
               t(f"{RQ}::test_a_failed_request_raises_the_handlers_failure_with_its_dlq_"
                 "reason")),
        Mutant("settle-lease-kept", f,
               "  if track then call('ZREM', KEYS[11], level .. ':' .. sid) end\n", "",
               "a retried or dead-lettered delivery keeps its global-concurrency slot",
               t(f"{CB}::test_every_settled_delivery_leaves_the_running_set")),
        Mutant("settle-unclaim-keeps-previous-bucket", f,
               "  call('HDEL', KEYS[10], unpack(ARGV, p, p + u - 1))\n", "",
               "a message handed back untouched stays claimed in the previous bucket",
               t(f"{CB}::test_a_message_handed_back_untouched_is_unclaimed_in_both_buckets")),
    ]


def _join() -> list[Mutant]:
    f = "join.lua"
    decide = t(GR, f"{JB}::test_an_all_group_succeeds_exactly_at_its_needed_successes",
               f"{JB}::test_a_count_group_decides_exactly_when_the_count_is_reached_or_"
               "out_of_reach",
               f"{JB}::test_fail_fast_fails_an_all_group_exactly_when_its_need_is_out_of_reach")
    return [
        Mutant("join-redelivered-member-counts-twice", f,
               "call('HSETNX', key, 's:' .. i, state) == 1",
               "call('HSET', key, 's:' .. i, state) >= 0",
               "HSETNX -> HSET: a redelivered member counts twice",
               t(f"{GR}::test_a_member_recorded_twice_counts_once_and_the_callback_is_"
                 "enqueued_once", *decide[1:])),
        Mutant("join-redelivered-member-overwrites", f,
               "call('HSETNX', key, 's:' .. i, state) == 1",
               "call('HSET', key, 's:' .. i, state) == 1",
               "HSETNX -> HSET: a member settled again overwrites its first outcome",
               t(f"{GR}::test_a_member_recorded_twice_counts_once_and_the_callback_is_"
                 "enqueued_once",
                 f"{JB}::test_a_member_settled_again_keeps_its_first_outcome")),
        Mutant("join-all-needs-one-more", f,
               "      if ok >= need then return 'succeeded' end",
               "      if ok > need then return 'succeeded' end",
               "an all group with exactly its needed successes fails", decide),
        Mutant("join-count-needs-one-more", f,
               "  else\n    if ok >= need then return 'succeeded' end",
               "  else\n    if ok > need then return 'succeeded' end",
               "a count group is not decided at exactly its needed successes", decide),
        Mutant("join-fail-fast-one-early", f,
               "if f[6] == '1' and ok + remaining < need then",
               "if f[6] == '1' and ok + remaining <= need then",
               "fail_fast fails a group that can still just reach its need", decide),
        Mutant("join-count-impossible-one-early", f,
               "    if ok + remaining < need then return 'failed' end",
               "    if ok + remaining <= need then return 'failed' end",
               "a count group fails while its count can still just be reached", decide),
        Mutant("join-remaining-off-by-one", f, "local remaining = n - ok - bad",
               "local remaining = n - ok - bad - 1",
               "a group is decided one member before every member settled", decide),
        Mutant("join-decided-group-fires-again", f,
               "      if call('HGET', key, 'st') == 'open' then",
               "      if call('HGET', key, 'st') ~= 'decided' then",
               "a member settling after the decision fires the callback again",
               t(f"{GR}::test_on_any_runs_the_callback_at_the_first_success_despite_a_failure",
                 f"{JB}::test_a_member_settling_after_the_decision_fires_nothing_more")),
        Mutant("join-expire-overwrites-outcomes", f,
               "if call('HSETNX', key, 's:' .. i, 'timeout') == 1 then",
               "if call('HSET', key, 's:' .. i, 'timeout') >= 0 then",
               "the deadline marks members that had an outcome as timed out too",
               t(f"{GR}::test_a_member_nobody_handles_fails_as_timeout_at_the_groups_deadline",
                 f"{JB}::test_the_deadline_times_out_only_members_without_an_outcome")),
        Mutant("join-expire-skips-last-member", f, "for i = 0, n - 1 do",
               "for i = 0, n - 2 do",
               "the deadline leaves the last member without an outcome",
               t(f"{GR}::test_a_member_nobody_handles_fails_as_timeout_at_the_groups_deadline",
                 f"{JB}::test_the_deadline_times_out_only_members_without_an_outcome")),
        Mutant("join-deadline-kept", f, "  if f[3] then call('ZREM', KEYS[5], f[3]) end\n",
               "", "a decided group's deadline message stays in the delayed set",
               t(GR, f"{JB}::test_a_member_settling_after_the_decision_fires_nothing_more")),
    ]


def _others() -> list[Mutant]:
    throttle = t(f"{FC}::test_two_provider_keys_each_hold_their_own_rate_across_two_workers",
                 f"{CB}::test_a_provider_key_runs_its_burst_then_reserves_one_slot_each")
    claims = t(RC, f"{CB}::test_a_copy_delivered_after_a_replay_bucket_boundary_is_a_replay")
    return [
        Mutant("claim-ignores-previous-bucket", "claim.lua",
               "local seen = prev[i] or cur[i] or batch[fields[i]]",
               "local seen = cur[i] or batch[fields[i]]",
               "a replayed copy after a replay-window bucket boundary is not caught", claims),
        Mutant("claim-redelivery-is-replay", "claim.lua", "if seen and seen ~= sid then",
               "if seen then", "a redelivery of the same stream entry counts as a replay",
               t(*claims, f"{RF}::test_a_poison_message_that_kills_its_worker_ends_in_the_dlq_"
                 "and_others_flow")),
        Mutant("claim-batch-copy-missed", "claim.lua",
               "local seen = prev[i] or cur[i] or batch[fields[i]]",
               "local seen = prev[i] or cur[i]",
               "two copies of one message in the same fetched batch both run", claims),
        Mutant("throttle-burst-one-short", "throttle.lua", "if tat - clock <= tau then",
               "if tat - clock < tau then", "a provider key's burst is one delivery short",
               throttle),
        Mutant("throttle-limiter-stuck", "throttle.lua",
               "call('HSET', KEYS[1], field, tat + interval)",
               "call('HSET', KEYS[1], field, tat)",
               "a provider key's limiter never advances: no rate limit", throttle),
        Mutant("throttle-reservation-late", "throttle.lua",
               "call('HSET', KEYS[2], rfield, tat - tau)",
               "call('HSET', KEYS[2], rfield, tat)",
               "a deferred delivery's reservation is later than the wait it was told",
               throttle),
        Mutant("cancel-missing-delayed-counts-as-removed", "cancel.lua",
               "if call('ZREM', KEYS[5], what) == 0 then return 0 end",
               "if call('ZREM', KEYS[5], what) < 0 then return 0 end",
               "cancelling a delayed message promoted meanwhile reports it removed",
               t(f"{CA}::test_a_delayed_message_is_removed_before_it_comes_due",
                 f"{CB}::test_cancelling_a_delayed_message_already_promoted_finds_nothing")),
        Mutant("fire-same-tick-twice", "fire.lua",
               "if tick <= last or tick <= tonumber(ARGV[3]) then",
               "if tick < last or tick <= tonumber(ARGV[3]) then",
               "a schedule tick already fired fires again",
               t(f"{SC}::test_of_eight_calls_firing_one_tick_at_once_exactly_one_writes_a_"
                 "message")),
    ]


MUTANTS: list[Mutant] = [*_fetch(), *_publish(), *_settle(), *_join(), *_others()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation.lua_mutants",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", action="append", default=[], metavar="ID",
                        help="run only this mutant (repeatable; the report is not written)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATH",
                        help="leave out selected tests under this path (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants at once (at most 2)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the check that the unmutated tree passes")
    parser.add_argument("--label", default="run", help="name of this run in the history")
    parser.add_argument("--fail-under", type=float, default=90.0)
    args = parser.parse_args(argv)
    if args.list:
        problems = check_snippets(MUTANTS)
        for m in MUTANTS:
            print(f"{m.id:44} {m.file:20} {m.description}")
        print(f"{len(MUTANTS)} mutants", *problems, sep="\n")
        return 1 if problems else 0
    chosen = MUTANTS
    if args.only:
        wanted = {i for spec in args.only for i in spec.split(",")}
        unknown = wanted - {m.id for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
        chosen = [m for m in MUTANTS if m.id in wanted]
    outcomes = run_all(chosen, jobs=args.jobs, timeout_s=args.timeout,
                       baseline=not args.no_baseline, exclude=args.exclude)
    killed = sum(o.killed for o in outcomes)
    rate = 100 * killed / max(len(outcomes), 1)
    print(f"{killed} of {len(outcomes)} killed ({rate:.1f} %)")
    if not args.only:
        write_report(MUTANTS, outcomes, ROOT / "reports" / "mutation-lua.md", args.label,
                     args.exclude)
        print("wrote reports/mutation-lua.md and reports/mutation-lua.json")
    return 0 if rate >= args.fail_under else 1


if __name__ == "__main__":
    sys.exit(main())
