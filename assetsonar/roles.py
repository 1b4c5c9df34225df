"""The portal's roles, as Django groups. `sync_roles` runs after every migrate (a post_migrate
receiver in assetsonar/signals.py), so permissions that a new model brings reach the roles.

- IT Manager: everything in the portal (all permissions of the portal apps) except MDM commands,
  plus managing SCIM provisioning tokens (the Provisioning page).
- MDM Operator: may execute MDM commands (lock devices) and see unlock PINs. Given on top of
  IT Manager by an administrator; kept separate because a lock is disruptive.
- Support Staff: the Django admin (the user also needs `is_staff`) and read access everywhere,
  plus deleting a user's lost authenticator app (the authenticator admin, automations/admin_otp.py).
- Viewer: read-only portal access.
"""

from __future__ import annotations

IT_MANAGER = "IT Manager"
MDM_OPERATOR = "MDM Operator"
SUPPORT_STAFF = "Support Staff"
VIEWER = "Viewer"

PORTAL_APPS = ["members", "assets", "licenses", "automations"]
MDM_PERMISSIONS = {("assets", "execute_mdm_commands"), ("assets", "view_unlock_pin")}
# Given to IT managers on top of the portal apps' permissions: SCIM tokens change members from
# outside, so the provisioning app's other permissions (its admin) stay with administrators.
PROVISIONING_PERMISSIONS = {("provisioning", "manage_provisioning")}
# Support Staff's only write: the owner of a lost authenticator then enrols a new one.
SUPPORT_EXTRA = {("automations", "delete_authenticatordevice")}


# The permission each part of the portal needs to be seen (navigation, dashboard sections).
SECTION_PERMISSIONS = {
    "members": "members.view_member",
    "assets": "assets.view_asset",
    "licenses": "licenses.view_license",
    "entitlements": "licenses.view_entitlement",
    "automations": "automations.view_automation",
    "provisioning": "provisioning.manage_provisioning",
}


def visible_sections(user) -> frozenset[str]:
    """The portal sections `user` may open (a superuser: all). Empty for a user with no role."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    return frozenset(name for name, perm in SECTION_PERMISSIONS.items() if user.has_perm(perm))


def has_portal_access(user) -> bool:
    """False for a signed-in user whom no role (and no permission) lets open any section."""
    return bool(visible_sections(user))


def sync_roles(apps, schema_editor=None) -> None:
    """Create the groups and (re)assign their permissions. Safe to run any number of times."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # A migration's app registry has no models modules, which create_permissions requires;
        # the real registry (post_migrate after a flush) has them and must keep them.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    portal = list(
        Permission.objects.filter(content_type__app_label__in=PORTAL_APPS).select_related(
            "content_type"
        )
    )
    audit_view = list(
        Permission.objects.filter(
            content_type__app_label="assetsonar", codename__startswith="view_"
        )
    )
    provisioning = [
        p
        for p in Permission.objects.filter(content_type__app_label="provisioning").select_related(
            "content_type"
        )
        if (p.content_type.app_label, p.codename) in PROVISIONING_PERMISSIONS
    ]
    views = [p for p in portal if p.codename.startswith("view_")]
    mdm = [p for p in portal if (p.content_type.app_label, p.codename) in MDM_PERMISSIONS]
    manager = [p for p in portal if (p.content_type.app_label, p.codename) not in MDM_PERMISSIONS]
    spec = {
        IT_MANAGER: manager + audit_view + provisioning,
        MDM_OPERATOR: mdm,
        SUPPORT_STAFF: [p for p in views if p.codename != "view_unlock_pin"]
        + [p for p in portal if (p.content_type.app_label, p.codename) in SUPPORT_EXTRA]
        + audit_view,
        VIEWER: [p for p in views if p.codename != "view_unlock_pin"],
    }
    for name, permissions in spec.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
