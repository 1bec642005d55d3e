from django.conf import settings


def demo(request) -> dict:
    return {"gateway_demo": settings.GATEWAY_DEMO_ACTIVE}
