# signlang HTTP service image. Built and run by deploy/build-image.sh (podman + a Debian bookworm base
# made with mmdebstrap, since Docker Hub is not reachable where this project is developed):
#   deploy/build-image.sh                         # -> localhost/signlang:onnx (landmarks-only)
#   podman run --network=host -v RUN/onnx:/model:ro localhost/signlang:onnx
# With Docker and a reachable registry: docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t signlang .
#
# INSTALL=onnx (default): the landmarks-only serving image: `pip install --no-deps .` plus the
#   exact pins of deploy/requirements-serve-onnx.txt (the `serve-onnx` extra resolved once by
#   deploy/lock-serve-onnx.sh; no torch, MediaPipe, scikit-learn, XGBoost), so two builds install
#   the same versions. Serves an
#   ONNX export (`signlang export`) or a bundle holding its onnx/ export; /predict (video) and
#   /explain answer 415/501 there.
# INSTALL=full: `pip install .[serve,video]` (torch, MediaPipe: videos and explanations too; resolved
#   from the ranges of pyproject.toml at build time, not pinned).
ARG BASE_IMAGE=localhost/signlang-base:bookworm
FROM ${BASE_IMAGE}

ARG INSTALL=onnx
# pip's configuration from the build host (deploy/build-image.sh passes those that are set)
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG PIP_DEFAULT_TIMEOUT
ARG PIP_CONSTRAINT
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# The base must hold python3 (3.11 on bookworm) and python3-venv; install them when it does not.
RUN if ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deploy/requirements-serve-onnx.txt ./deploy/
COPY src ./src
RUN if [ "$INSTALL" = "full" ]; then \
        pip install ".[serve,video]"; \
    else \
        pip install --no-deps . \
        && pip install --no-deps -r deploy/requirements-serve-onnx.txt && pip check \
        && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the onnx image" >&2; exit 1; fi; \
    fi \
    && signlang --help > /dev/null

# minbase has no useradd: the unprivileged user is written directly
RUN echo "signlang:x:10001:10001::/home/signlang:/bin/sh" >> /etc/passwd \
    && echo "signlang:x:10001:" >> /etc/group \
    && mkdir -p /home/signlang && chown 10001:10001 /home/signlang

USER 10001
EXPOSE 8000
# The model (an ONNX export, or a bundle with its onnx/ export; INSTALL=full: any run folder) is mounted at /model.
CMD ["signlang", "serve", "--host", "0.0.0.0", "--port", "8000", "--model", "/model", "--backend", "onnx"]
