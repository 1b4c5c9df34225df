from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning (SCIM)"

    def ready(self) -> None:
        # scim2-models checks email addresses with email-validator (pydantic's EmailStr), which
        # refuses addresses Django's validator and the member form accept: `jo@localhost`, and
        # special-use domains such as `corp.local` that closed company networks use. The member
        # form is the rule here (provisioning.resources checks addresses with it first), so
        # email-validator is switched to syntax checks only, through its documented module-level
        # defaults. Nothing else in the portal uses email-validator.
        import email_validator

        email_validator.GLOBALLY_DELIVERABLE = False
        email_validator.SPECIAL_USE_DOMAIN_NAMES = []
