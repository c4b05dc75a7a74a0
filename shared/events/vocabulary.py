"""Words every service agrees on: channels, categories, tiers, severities, roles."""

from enum import StrEnum


class Channel(StrEnum):
    """Where a complaint came in."""

    WEB = "web"
    APP = "app"
    EMAIL = "email"
    PHONE = "phone"
    CHAT = "chat"
    SOCIAL = "social"
    STORE = "store"
    GENERIC = "generic"


class Category(StrEnum):
    """What a complaint is about (DOMAIN.md shares: 38/22/18/12/10%)."""

    PRODUCT_USAGE = "product_usage"
    ACCOUNT_ANOMALY = "account_anomaly"
    SERVICE_COMPLAINT = "service_complaint"
    POLICY_QUESTION = "policy_question"
    OTHER = "other"


class UrgencyCue(StrEnum):
    """Signals in a complaint that raise its urgency."""

    SECURITY = "security"
    MONEY_LOST = "money_lost"
    SAFETY = "safety"
    LEGAL_THREAT = "legal_threat"
    MEDIA_EXPOSURE = "media_exposure"
    REPEATED_CONTACT = "repeated_contact"


class Sentiment(StrEnum):
    """Coarse tone of the customer's words."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Department(StrEnum):
    """Departments that own parts of a complaint."""

    PRODUCT_SUPPORT = "product_support"
    ACCOUNTS_SECURITY = "accounts_security"
    BILLING = "billing"
    LOGISTICS = "logistics"
    POLICY_DESK = "policy_desk"


class CustomerTier(StrEnum):
    """Customer value tiers from DOMAIN.md."""

    HIGH_VALUE = "high_value"
    MID_VALUE = "mid_value"
    POTENTIAL = "potential"


class Severity(StrEnum):
    """Severity tiers; P1 is the most severe."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Role(StrEnum):
    """Operator roles, lowest authority first."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"


ROLE_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.MANAGER: 3}
