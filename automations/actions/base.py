"""The action-kind contract and its registry (like `automations.triggers` and
`automations.conditions`, one registry per extension point).

An action kind is one module of this package (`webhook.py`, `revoke_licenses.py`,
`mdm_lock.py`) holding one `ActionKind` subclass, registered with `register()`, plus its templates
under `templates/automations/actions/<key>/`. Everything else asks the registry: the builder
(which kinds can be added, their settings forms and cards), the services (validation, history,
the MDM gate), the engine (`runner.py`: prepare, send and record, retries), the deactivation
preview (`plan`, from the target selection `prepare` uses), the execution log, the member's
Automated actions panel and the admin. A Django system check (`automations.E001`, see
`check_kinds`) refuses to start with a kind that lacks a part.

Adding a kind touches: its module here, one import line in `automations/actions/__init__.py`,
and its templates (a builder card, and optionally an automation-page and a log-row template):
3 to 5 files, against about 15 before the registry.

Settings live in `Action.config` (JSON). A kind's secrets (the webhook's headers) go to
`Action.secrets_encrypted` (one encrypted JSON object, `assetsonar.crypto`), never to `config`;
signing secrets keep their own encrypted columns on Action for rotation with a grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.core.checks import Error
from django.core.checks import register as register_check

if TYPE_CHECKING:
    from automations.engine.common import Job, Prep, RunContext
    from automations.models import Action, ActionLog


@dataclass(frozen=True)
class ActionSpec:
    """One action as the builder and the services see it: its kind, its settings (secrets
    included, in memory only), whether a failure stops the actions after it, how long after the
    trigger it runs (zero: immediately; every kind may be delayed), and the stored action it
    edits (None for a new one)."""

    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    continue_on_error: bool = True
    action_id: int | None = field(default=None, compare=False)
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class Target:
    """One thing an action acts on for a member (a license seat, a device, a webhook, a
    recipient, the approval step), as `ActionKind.plan` selects it: the engine's `prepare()`
    claims one ActionLog per logged target, and the deactivation preview lists them.

    `key` is the target part of the log key (`engine.common.log_key`), `label` the log's target
    label. `skip_reason` says why it would not be acted on ("" when it would be): the insight
    its log gets. `unmet`: skipped without acting on it, which leaves the execution partially
    failed. `logged`: False for what the engine passes over without a log (a monitor among the
    devices to lock), shown by the preview only. `via`: how it is reached or who it is
    ("via Jamf Pro “prod”", "Manager Alex Chen")."""

    key: str
    label: str
    skip_reason: str = ""
    unmet: bool = False
    logged: bool = True
    via: str = ""
    obj: Any = field(default=None, compare=False, repr=False)

    @property
    def acted_on(self) -> bool:
        return not self.skip_reason


class ActionKind:
    """One kind of action. Subclasses set the class attributes and implement the methods below;
    `check_kinds` lists what is required."""

    # Identity and the builder's "Add action" menu.
    key: ClassVar[str]  # stored in Action.kind and ActionLog.action_kind
    label: ClassVar[str]  # the menu's choice, e.g. "Trigger webhook"
    description: ClassVar[str]  # one line under the choice
    log_label: ClassVar[str]  # the Action column of the logs, e.g. "Trigger webhook"
    chip: ClassVar[str]  # the short name on the automation list, e.g. "Webhook"
    icon: ClassVar[str]  # CSS class of the card's icon
    # Settings: the form of its card (fields only; the row adds kind, order, remove and
    # continue-on-error) and the card's template, rendered with `row` (the row form) and
    # `form` (the settings form).
    form_class: ClassVar[type[forms.Form]]
    builder_template: ClassVar[str]
    # The automation page's description of one action (`action`, `settings`); optional.
    detail_template: ClassVar[str] = "automations/actions/_detail.html"
    # Extra rows under a log on the execution page (`log`); "" for none.
    log_template: ClassVar[str] = ""
    # Target types of its logs beyond ActionLog.TargetType's (value → label), e.g. an email
    # kind's {"recipient": "Recipient"}.
    target_types: ClassVar[dict[str, str]] = {}
    # What the deactivation preview counts of its targets: (one, many), e.g. ("email", "emails").
    target_noun: ClassVar[tuple[str, str]] = ("target", "targets")
    # Fixed texts of its logs' insights (named, so tests and docs can refer to them).
    insights: ClassVar[dict[str, str]] = {}
    # Engine behaviour.
    urgent: ClassVar[bool] = False  # sent first, in a pool of its own (device locks)
    # Adding, changing or retargeting it needs the MDM feature, permission and an OTP.
    locks_devices: ClassVar[bool] = False
    retry_setting: ClassVar[str] = ""  # settings name of its retry delays, "" if none
    # Signs what it sends with Action.secret_encrypted (rotated from the automation page).
    signs_requests: ClassVar[bool] = False

    REQUIRED_ATTRIBUTES: ClassVar[tuple[str, ...]] = (
        "key",
        "label",
        "description",
        "log_label",
        "chip",
        "icon",
        "form_class",
        "builder_template",
    )
    REQUIRED_METHODS: ClassVar[tuple[str, ...]] = (
        "default_config",
        "clean_config",
        "form_initial",
        "config_from_form",
        "read",
        "write",
        "summary",
        "snapshot",
        "admin_text",
        "plan",
        "prepare",
    )

    # --- Settings ---------------------------------------------------------------------------

    def default_config(self) -> dict[str, Any]:
        """The settings of a card just added in the builder."""
        raise NotImplementedError

    def clean_config(
        self, config: dict[str, Any], *, previous: dict[str, Any] | None
    ) -> dict[str, list[str]]:
        """The service-side check of settings (the form checked them already): {field: [error]};
        empty when valid. `previous`: the stored settings of the action being edited."""
        raise NotImplementedError

    def form_initial(self, config: dict[str, Any]) -> dict[str, Any]:
        """The card form's initial data for stored settings (never a secret value)."""
        raise NotImplementedError

    def config_from_form(self, form: forms.Form) -> dict[str, Any]:
        """Valid settings from the card's bound, valid form."""
        raise NotImplementedError

    def form_kwargs(self, *, config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """Extra keyword arguments of `form_class`: e.g. the saved secret values in `config`,
        or the builder's `options` (check_network: False for the live preview)."""
        return {}

    def lenient_config(self, form: forms.Form) -> dict[str, Any]:
        """What a bound card holds so far, valid or not (the builder's live summary)."""
        return {
            name: field.widget.value_from_datadict(form.data, form.files, form.add_prefix(name))
            for name, field in form.fields.items()
        }

    def form_config(self, initial: dict[str, Any]) -> dict[str, Any]:
        """Settings from a card's initial data (the live summary of an unposted page)."""
        return dict(initial)

    def submitted_config(self, form: forms.Form) -> dict[str, Any]:
        """What a POST asks for before validation (for the MDM gate); the kinds that lock
        devices implement it."""
        return {}

    def read(self, action: Action) -> dict[str, Any]:
        """A stored action's settings, its secrets decrypted (for the builder and the diff)."""
        raise NotImplementedError

    def write(self, action: Action, config: dict[str, Any]) -> str | None:
        """Put `config` on the (unsaved) action, secrets encrypted; return a new secret to show
        the user once, if one was generated."""
        raise NotImplementedError

    def available(self, user: Any) -> tuple[bool, list[str]]:
        """Whether the user may add, change or remove it, and why not."""
        return True, []

    # --- Describing -------------------------------------------------------------------------

    def summary(self, config: dict[str, Any]) -> str:
        """Its part of the automation's sentence, e.g. "call https://hr.example.com/…"."""
        raise NotImplementedError

    def snapshot(self, config: dict[str, Any]) -> dict[str, str]:
        """What the history shows of it: readable lines, never a secret value."""
        raise NotImplementedError

    def admin_text(self, action: Action) -> str:
        """One line for the admin's read-only view (no secret value)."""
        raise NotImplementedError

    def plan(self, *, items: list[Prep], context: RunContext) -> list[list[Target]]:
        """What it would do now for each item (an action and the event's member snapshot; the
        execution may be unsaved): its targets in order, each with the reason it would be
        skipped, one list per item. Reads only, a fixed number of queries for all the items.
        Items are planned in order, as the engine prepares them: what an earlier item takes
        (a seat it revokes, a device it locks) a later one does not get.

        The target selection (and the skip decisions known before sending) is the one
        `prepare()` uses: the preview (automations.selectors_preview) is what the engine then
        does, except for what only sending can tell (a receiver down, a vendor refusing)."""
        raise NotImplementedError

    # --- Running ----------------------------------------------------------------------------

    def prepare(self, *, items: list[Prep], context: RunContext) -> list[Job]:
        """In the run's first transaction: claim one ActionLog per target of each item (key:
        `engine.common.log_key(event, automation, action.pk, target)`), start their attempts and
        return one Job per side effect still to be sent: `Job.perform` sends (outside any
        transaction, no database), `Job.record` stores the outcome. Work done in the database
        only (revoking licenses) is done here and returns no job."""
        raise NotImplementedError

    def resume(self, log: ActionLog, interrupted: bool) -> Job | None:
        """The Job of a scheduled retry of one started log; kinds without retries return None."""
        return None


REGISTRY: dict[str, ActionKind] = {}


def register(kind: type[ActionKind]) -> type[ActionKind]:
    """Register a kind (a class decorator). The order of registration is the order of the
    builder's "Add action" menu."""
    REGISTRY[kind.key] = kind()
    return kind


def get_kind(key: str) -> ActionKind | None:
    return REGISTRY.get(key)


def kind_choices() -> list[tuple[str, str]]:
    """(key, log label) of every kind: the choices of Action.kind and ActionLog.action_kind."""
    return [(key, getattr(k, "log_label", key)) for key, k in REGISTRY.items()]


def log_label(key: str) -> str:
    kind = REGISTRY.get(key)
    return getattr(kind, "log_label", key) if kind else key


@register_check()
def check_kinds(app_configs=None, **kwargs) -> list[Error]:
    """Every registered kind provides every part the registry needs."""
    errors = []
    for key, kind in REGISTRY.items():
        missing = [a for a in ActionKind.REQUIRED_ATTRIBUTES if not getattr(kind, a, None)]
        missing += [
            m
            for m in ActionKind.REQUIRED_METHODS
            if getattr(type(kind), m, None) is getattr(ActionKind, m)
        ]
        if kind.locks_devices and type(kind).submitted_config is ActionKind.submitted_config:
            missing.append("submitted_config")
        if kind.retry_setting and type(kind).resume is ActionKind.resume:
            missing.append("resume")
        if missing:
            errors.append(
                Error(
                    f"Action kind “{key}” lacks: {', '.join(missing)}.",
                    hint="See automations/actions/base.py, ActionKind.",
                    obj=type(kind),
                    id="automations.E001",
                )
            )
        elif getattr(kind, "key", key) != key:
            errors.append(
                Error(
                    f"Action kind “{key}” is registered under another key.", id="automations.E002"
                )
            )
    return errors
