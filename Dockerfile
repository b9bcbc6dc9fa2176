# signlang HTTP service: `docker build -t signlang .` then
#   docker run -p 8000:8000 -v /path/to/run_dir:/model:ro signlang
# UNTESTED: no Docker engine runs where this project is developed, so this file has never been
# built; it follows the README's install (pip + the CPU torch wheel index) and nothing else.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgl1/libglib2.0-0: OpenCV and MediaPipe's native libraries need them on a slim image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[serve,video]"

RUN useradd --create-home --uid 10001 signlang
USER signlang

EXPOSE 8000
# The model (a run folder from `signlang train`, or an ONNX export) is mounted at /model.
CMD ["signlang", "serve", "--host", "0.0.0.0", "--port", "8000", "--model", "/model"]
