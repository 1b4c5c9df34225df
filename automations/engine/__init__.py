"""The offboarding engine: from a member's status transition to actions on every target.

    Member.save()                    signals.py: post_save sees active → deactivated
      └ events.event_record           Event row in the same transaction, task enqueued on commit
          └ tasks.process_event       runner.event_process: count the attempt (committed first),
                                      match automations against the member as recorded at the
                                      event, one Execution per match, run each action
              ├ webhook.webhook_run   one ActionLog per webhook; HTTP attempts with retries
              ├ licenses.licenses_revoke  one ActionLog per entitlement, bulk and bounded
              └ mdm.mdm_lock_run      one ActionLog + MDMCommand per device in custody
          └ tasks.retry_action        a scheduled retry of one webhook or MDM ActionLog
      └ tasks.sweep_events            every minute: re-dispatch what no task picked up

Delivery is at least once; every (event, automation, action, target) is an `ActionLog.key`
claimed before acting, so a task that runs twice never acts twice and never skips a target.
Nothing here reads django-q2's task tables: the Event, Execution and ActionLog rows are the
record.
"""
