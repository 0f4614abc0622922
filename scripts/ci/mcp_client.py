#!/usr/bin/env python3
"""Drives the service's MCP endpoint with the official Python MCP client (PyPI `mcp`), as an agent would.

    python3 scripts/ci/mcp_client.py <mcp-url> <bearer-token> <project-id>

Lists the tools, remembers three memories (text only: the service embeds them, so the gateway needs
EMBEDDING_BASE_URL), recalls by text, forgets and restores one, consolidates (a dry run by default,
then a real run), reads each job's result, lists the reviews and rolls the real job back. A worker
must be running. Prints one `ok <step> ...` line per step and `all ok` at the end; exits 1 at the
first step that fails, naming it.
"""

import asyncio
import json
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

EXPECTED_TOOLS = {
    "remember", "recall", "forget", "restore", "reuse", "consolidate", "job_result", "rollback",
    "list_reviews", "settle_review",
}
JOB_PATIENCE_SECS = 60


class StepFailed(Exception):
    pass


def check(step, condition, detail):
    if not condition:
        raise StepFailed(f"{step}: {detail}")


async def call(session, step, tool, arguments):
    """The tool's structured answer; a tool error fails the step."""
    result = await session.call_tool(tool, arguments)
    body = result.structured_content
    if body is None and result.content:
        body = json.loads(result.content[0].text)
    check(step, not result.is_error, f"{tool} answered an error: {body}")
    return body


async def finished_job(session, step, job_id):
    deadline = time.monotonic() + JOB_PATIENCE_SECS
    while time.monotonic() < deadline:
        job = await call(session, step, "job_result", {"job_id": job_id})
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.3)
    raise StepFailed(f"{step}: job {job_id} did not finish within {JOB_PATIENCE_SECS} s")


async def run(url, token, project):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            check("list_tools", EXPECTED_TOOLS <= tools.keys(), f"missing {EXPECTED_TOOLS - tools.keys()}")
            remember_schema = tools["remember"].input_schema
            check("list_tools", {"project_id", "execution_summary", "context_embedding"}
                  <= remember_schema.get("properties", {}).keys(), f"remember's schema: {remember_schema}")
            print(f"ok list_tools {','.join(sorted(tools))}")

            texts = [
                "The upload test is flaky: retry the upload with exponential backoff.",
                "The upload test is flaky: retry the upload with exponential backoff.",
                "Service settings are read from settings.toml at start.",
            ]
            ids = []
            for text in texts:
                stored = await call(session, "remember", "remember",
                                    {"project_id": project, "execution_summary": text, "memory_type": "error_fix"})
                check("remember", stored["embedded"] == 1, f"not embedded by the service: {stored}")
                ids.append(stored["ids"][0])
            print(f"ok remember {len(ids)} embedded by the service")

            found = await call(session, "recall", "recall",
                               {"project_id": project, "query": "settings.toml settings read at start", "limit": 1})
            top = found["results"][0]["memory"]["id"] if found["results"] else None
            check("recall", top == ids[2], f"expected {ids[2]} first, got {found}")
            print(f"ok recall {top}")

            await call(session, "forget", "forget", {"memory_id": ids[2], "reason": "wrong"})
            found = await call(session, "recall", "recall", {"project_id": project, "query": "settings.toml"})
            check("forget", ids[2] not in [hit["memory"]["id"] for hit in found["results"]], f"still recalled: {found}")
            await call(session, "restore", "restore", {"memory_id": ids[2]})
            print("ok forget and restore")

            dry = await call(session, "consolidate", "consolidate", {"project_id": project})
            job = await finished_job(session, "consolidate", dry["job_id"])
            check("consolidate", job["status"] == "completed" and job["dry_run"] is True, f"dry run: {job}")
            print(f"ok consolidate dry_run job {job['job_id']}")

            real = await call(session, "consolidate", "consolidate",
                              {"project_id": project, "options": {"dry_run": False}})
            job = await finished_job(session, "consolidate", real["job_id"])
            merged = job["counters"]["memories_merged"]
            check("consolidate", job["status"] == "completed" and merged == 2, f"real run: {job}")
            print(f"ok consolidate merged {merged}")

            reviews = await call(session, "list_reviews", "list_reviews", {"project_id": project})
            print(f"ok list_reviews {len(reviews['reviews'])}")

            undone = await call(session, "rollback", "rollback",
                                {"consolidation_id": job["job_id"], "reason": "mcp client check"})
            check("rollback", undone["status"] == "completed" and undone["success"], f"rollback: {undone}")
            job = await call(session, "rollback", "job_result", {"job_id": job["job_id"]})
            check("rollback", job["status"] == "rolled_back", f"job after the rollback: {job}")
            print(f"ok rollback {undone['rollback_id']} restored {undone['memories_restored']}")
    print("all ok")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        asyncio.run(run(*sys.argv[1:4]))
    except StepFailed as failure:
        print(f"FAILED {failure}")
        sys.exit(1)


if __name__ == "__main__":
    main()
