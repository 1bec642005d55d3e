# OCI GenAI gateway. Mount ~/.oci read-only at /home/gateway/.oci, or use instance/resource principals.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8088 \
    GATEWAY_PRODUCTION=true \
    GATEWAY_VAR_DIR=/var/lib/gateway \
    OCI_CONFIG_FILE=/home/gateway/.oci/config

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --create-home --home-dir /home/gateway gateway \
    && mkdir -p /var/lib/gateway /home/gateway/.oci \
    && chown gateway:gateway /var/lib/gateway

COPY --chown=gateway:gateway . .

USER 10001:10001
EXPOSE 8088
VOLUME ["/var/lib/gateway"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
