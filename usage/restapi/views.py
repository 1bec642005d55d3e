"""The management API: thin views over the key, catalogue, usage and discovery services.

Every view runs as "api:<username>" for the audit log, answers errors as JSON with a 4xx status
(`manage_exception_handler`), and needs a staff user holding the matching model permission.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.fields import get_error_detail
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from audit.context import Actor, acting_as
from models_registry.discovery import DiscoveryError, discover_models, discovery_apply
from models_registry.models import CredentialProfile, Deployment, PublicModel, Route
from models_registry.services import ImportError_

from ..keys import api_key_create, api_key_disable, api_key_rotate
from ..models import LIMIT_FIELDS, ApiKey, Team, UsageRecord
from ..operations import api_key_enable, api_key_update
from . import serializers as s
from .selectors import usage_records, usage_rollup

log = logging.getLogger("gateway.manage")

ERROR_SCHEMA = OpenApiResponse(OpenApiTypes.OBJECT, description='An error: {"detail": "..."} or {field: [messages]}')


# --- errors ----------------------------------------------------------------------------------------


def manage_exception_handler(exc, context):
    """DRF's handler, plus the Django and service errors a write can raise, so nothing becomes a 500."""
    if isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(get_error_detail(exc))
    elif isinstance(exc, ImportError_):
        exc = serializers.ValidationError({"detail": str(exc)})
    elif isinstance(exc, ProtectedError | RestrictedError):
        users = sorted({str(o) for o in exc.protected_objects if o is not None} if isinstance(exc, ProtectedError)
                       else {str(o) for o in exc.restricted_objects})
        return Response({"detail": f"Still in use by: {', '.join(users[:20])}. Change or delete those first."},
                        status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, IntegrityError):
        return Response({"detail": f"Conflicts with an existing object ({exc.__cause__ or exc})."},
                        status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, DataError):
        return Response({"detail": "The database refused a value (out of range or not storable)."},
                        status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, OperationalError):
        log.warning("management API: database unavailable: %s", exc)
        return Response({"detail": "The database is unavailable; retry in a moment."},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    elif isinstance(exc, DiscoveryError):
        return Response({"detail": f"Discovery failed: {exc}"}, status=status.HTTP_502_BAD_GATEWAY)
    return exception_handler(exc, context)


# --- permissions -----------------------------------------------------------------------------------


class StaffModelPermission(permissions.BasePermission):
    """Staff only, and the Django model permission for what the request does (as in the admin)."""

    METHOD_PERMS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change",
                    "PATCH": "change", "DELETE": "delete"}

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        model = getattr(view, "perm_model", None) or getattr(getattr(view, "queryset", None), "model", None)
        if model is None:
            return True
        verb = getattr(view, "perm_verbs", {}).get(getattr(view, "action", None)) or self.METHOD_PERMS.get(
            request.method, "change")
        opts = model._meta
        if verb == "view" and user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
            return True  # as in the admin, change implies view
        return user.has_perm(f"{opts.app_label}.{verb}_{opts.model_name}")


class ManageView:
    """Mixin for every management view: audit actor, JSON errors, staff permissions."""

    permission_classes = [StaffModelPermission]

    def dispatch(self, request, *args, **kwargs):
        # DRF authenticates lazily inside dispatch: resolve the user only when a change is recorded.
        with acting_as(lambda: Actor.for_user("api", getattr(getattr(self, "request", None), "user", None))):
            return super().dispatch(request, *args, **kwargs)

    def get_exception_handler(self):
        return manage_exception_handler


class Pages(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class AtomicWritesMixin:
    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_destroy(self, instance):
        with transaction.atomic():
            instance.delete()


class CatalogueViewSet(ManageView, AtomicWritesMixin, viewsets.ModelViewSet):
    pagination_class = Pages
    lookup_value_regex = r"\d+"


# --- teams and keys --------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List teams"), create=extend_schema(summary="Create a team"),
    retrieve=extend_schema(summary="Get a team"), update=extend_schema(summary="Replace a team"),
    partial_update=extend_schema(summary="Change a team"),
    destroy=extend_schema(summary="Delete a team (its keys stay, without a team)"),
)
class TeamViewSet(CatalogueViewSet):
    queryset = Team.objects.order_by("name")
    serializer_class = s.TeamSerializer


def _with_secret(key: ApiKey, secret: str) -> dict:
    data = s.ApiKeyWithSecretSerializer(key).data
    data["secret"] = secret
    return data


@extend_schema_view(
    list=extend_schema(summary="List keys", parameters=[
        OpenApiParameter("team", int, description="Only this team's keys."),
        OpenApiParameter("active", bool, description="Only active (true) or disabled (false) keys."),
    ]),
    retrieve=extend_schema(summary="Get a key"),
)
class ApiKeyViewSet(ManageView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ApiKey.objects.select_related("team").order_by("name", "id")
    serializer_class = s.ApiKeySerializer
    pagination_class = Pages
    lookup_value_regex = r"\d+"
    perm_verbs = {"rotate": "change", "disable": "change", "enable": "change"}

    def get_queryset(self):
        qs = super().get_queryset()
        team = self.request.query_params.get("team")
        if team is not None:
            if not team.isdigit():
                raise serializers.ValidationError({"team": "Give a team id (an integer)."})
            qs = qs.filter(team_id=int(team))
        active = self.request.query_params.get("active")
        if active is not None:
            if active.lower() not in ("true", "false", "1", "0"):
                raise serializers.ValidationError({"active": "Give true or false."})
            qs = qs.filter(is_active=active.lower() in ("true", "1"))
        return qs

    @extend_schema(summary="Create a key", request=s.ApiKeyCreateSerializer,
                   responses={201: s.ApiKeyWithSecretSerializer, 400: ERROR_SCHEMA},
                   description="The response holds the key's `secret`: it is never shown again.")
    def create(self, request):
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            key, secret = api_key_create(
                name=data["name"], team=data.get("team"), allowed_models=data.get("allowed_models") or [],
                expires_at=data.get("expires_at"), metadata=data.get("metadata") or {},
            )
            # api_key_create knows no owner nor limits: set them in one more (audited) save if given.
            api_key_update(key=key, owner=data.get("owner"), **{f: data[f] for f in LIMIT_FIELDS if f in data})
        return Response(_with_secret(key, secret), status=status.HTTP_201_CREATED)

    def _update(self, request, partial: bool):
        key = self.get_object()
        serializer = s.ApiKeyUpdateSerializer(key, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        api_key_update(key=key, **serializer.validated_data)
        return Response(s.ApiKeySerializer(key).data)

    @extend_schema(summary="Change a key's name, team, allowlist, expiry, metadata or state",
                   request=s.ApiKeyUpdateSerializer, responses={200: s.ApiKeySerializer, 400: ERROR_SCHEMA})
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    @extend_schema(summary="Replace a key's editable fields", request=s.ApiKeyUpdateSerializer,
                   responses={200: s.ApiKeySerializer, 400: ERROR_SCHEMA})
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(summary="Give a key a new secret", request=s.RotateSerializer,
                   responses={200: s.ApiKeyWithSecretSerializer},
                   description="The response holds the new `secret`, shown this once. With `grace_seconds` the "
                               "old secret keeps working for that long.")
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        key = self.get_object()
        serializer = s.RotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = api_key_rotate(key=key, grace=timedelta(seconds=serializer.validated_data["grace_seconds"]))
        return Response(_with_secret(key, secret))

    @extend_schema(summary="Disable a key (it stops working at once)", request=None,
                   responses={200: s.ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        key = self.get_object()
        api_key_disable(key=key)
        return Response(s.ApiKeySerializer(key).data)

    @extend_schema(summary="Enable a disabled key", request=None, responses={200: s.ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        key = self.get_object()
        api_key_enable(key=key)
        return Response(s.ApiKeySerializer(key).data)


# --- the catalogue ---------------------------------------------------------------------------------


class CredentialProfileViewSet(CatalogueViewSet):
    queryset = CredentialProfile.objects.order_by("name")
    serializer_class = s.CredentialProfileSerializer


@extend_schema_view(list=extend_schema(parameters=[s.DeploymentQuerySerializer]))
class DeploymentViewSet(CatalogueViewSet):
    queryset = Deployment.objects.select_related("credential").order_by("name")
    serializer_class = s.DeploymentSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action != "list":
            return qs
        query = s.DeploymentQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return qs.filter(**query.validated_data)


class PublicModelViewSet(CatalogueViewSet):
    queryset = PublicModel.objects.prefetch_related("routes__deployment").order_by("name")
    serializer_class = s.PublicModelSerializer


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("public_model", int)]))
class RouteViewSet(CatalogueViewSet):
    queryset = Route.objects.select_related("public_model", "deployment").order_by("public_model__name",
                                                                                      "priority", "id")
    serializer_class = s.RouteSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        pm = self.request.query_params.get("public_model")
        if pm is not None:
            if not pm.isdigit():
                raise serializers.ValidationError({"public_model": "Give a public model id (an integer)."})
            qs = qs.filter(public_model_id=int(pm))
        return qs


# --- usage -----------------------------------------------------------------------------------------


class UsagePages(CursorPagination):
    """Cursor pages: no COUNT(*) over the usage table, stable while new rows arrive."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema_view(list=extend_schema(summary="Usage records, newest first",
                                       parameters=[s.UsageQuerySerializer]))
class UsageRecordViewSet(ManageView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = UsageRecord.objects.all()
    serializer_class = s.UsageRecordSerializer
    pagination_class = UsagePages
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if self.action != "list":
            return super().get_queryset()
        query = s.UsageQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return usage_records(**query.validated_data)

    @extend_schema(summary="Usage totals grouped by key, team, model or day", parameters=[s.RollupQuerySerializer],
                   responses={200: s.RollupSerializer, 400: ERROR_SCHEMA},
                   description="Over [start, end) — by default the last 30 days. At most 1000 groups.")
    @action(detail=False, methods=["get"], pagination_class=None)
    def rollup(self, request):
        query = s.RollupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(usage_rollup(**query.validated_data))


# --- discovery -------------------------------------------------------------------------------------


class DiscoveryView(ManageView, APIView):
    perm_model = PublicModel
    perm_verbs = {None: "add"}

    @extend_schema(summary="Discover the models OCI offers in a region; optionally import them",
                   request=s.DiscoveryRequestSerializer,
                   responses={200: s.DiscoveryResultSerializer, 400: ERROR_SCHEMA, 502: ERROR_SCHEMA},
                   description="Calls OCI ListModels / ListEndpoints. When OCI cannot be asked, the shipped "
                               "fallback list is returned with a warning (`source: fallback`).")
    def post(self, request):
        body = s.DiscoveryRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = discover_models(region=data["region"], compartment_id=data["compartment_id"],
                                 credential=data.get("credential"))
        summary = None
        if data["apply"]:
            summary = discovery_apply(result, names=data.get("names"))
        existing = set(PublicModel.objects.filter(name__in=result.names()).values_list("name", flat=True))
        return Response({
            "region": result.region, "compartment_id": result.compartment_id, "source": result.source,
            "warnings": result.warnings,
            "models": [{**m.as_dict(), "in_catalogue": m.name in existing} for m in result.models],
            "applied": vars(summary) if summary is not None else None,
        })


# --- tokens ----------------------------------------------------------------------------------------


class StaffTokenView(ObtainAuthToken):
    """POST username + password → the user's API token. Staff only."""

    def get_exception_handler(self):
        return manage_exception_handler

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not serializer.validated_data["user"].is_staff:
            raise PermissionDenied("Only staff users may use the management API.")
        return super().post(request, *args, **kwargs)


def not_found(request, *args, **kwargs):
    return JsonResponse({"detail": f"No management API endpoint at {request.path}. See /manage/api/docs/."},
                        status=404)
