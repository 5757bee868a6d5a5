# xsys in a container. Build: docker build -t xsys .
# Watching the host from the container (docs/service.md, "Container"):
#   docker run -d --name xsys --pid=host --network=host \
#     -v /sys:/sys:ro -v /run/xsys:/run/xsys xsys
# With the host's pid and network namespaces, /proc inside the container shows the host's
# processes, load and network counters; /sys read-only gives disks and sensors. Disk
# usage covers the filesystems mounted into the container only. The socket appears in the
# host's /run/xsys (the volume); the container's user is uid 10001 unless --user says
# otherwise (--user 0 to read every process's details).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY xsys ./xsys
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/xsys --create-home xsys \
    && install -d -o xsys -g xsys -m 0755 /run/xsys
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER xsys
ENV XSYS_SOCKET=/run/xsys/xsys.sock
VOLUME ["/run/xsys"]
HEALTHCHECK --interval=30s --timeout=5s CMD ["xsys", "ping"]
ENTRYPOINT ["xsys"]
CMD ["serve"]
