"""The offboarding engine: from a member's status transition to actions on every target.

    Member.save()                    signals.py: post_save sees active → deactivated
      └ events.event_record           Event row in the same transaction; on commit, a task is
                                      queued unless one is waiting that will take it (event_wake)
          └ tasks.process_event       runner.event_process, in three steps:
                                      1. one transaction: count the attempt, match automations
                                         against the member as recorded at the event, one
                                         Execution per match, and prepare every action, in
                                         the automation's order, through its kind's plug-in
                                         (automations/actions, `ActionKind.prepare`):
              ├ webhook               one ActionLog per webhook, attempt started
              ├ revoke_licenses       one ActionLog per entitlement, revoked (bulk, bounded)
              └ mdm_lock              one ActionLog + MDMCommand (PIN) per device in custody
                                      2. no transaction: send the locks (own pool, recorded
                                         at once) and, beside them, the webhooks
                                      3. one transaction: record the outcomes, settle statuses
          └ tasks.retry_action        a scheduled retry of one webhook or MDM ActionLog
      └ tasks.sweep_events            every minute: re-dispatch what no task picked up

Delivery is at least once; every (event, automation, action, target) is an `ActionLog.key`
claimed before acting, so a task that runs twice never skips a target and never claims one twice.
What an interrupted attempt may have done is made safe per kind: a webhook goes again with the
same webhook-id; a device keeps one lock until unlocked, and a lock whose answer was lost is
looked up at the vendor before it is sent again (actions/mdm_lock.py).
Nothing here reads django-q2's task tables: the Event, Execution and ActionLog rows are the
record.
"""
