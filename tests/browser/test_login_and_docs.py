"""Logging in to the tenant admin, and the API docs it links to, in a real browser."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Route, expect

from tests.browser.conftest import log_in, shot


def test_a_staff_member_logs_in_through_the_admin_form_and_sees_the_tenant_admin(app, new_page):
    page = new_page()
    page.goto(app.admin())
    assert "/login/" in page.url  # not logged in yet: sent to the form
    shot(page, "01-login-form")

    log_in(page, app, app.members["stella"])

    assert urlsplit(page.url).path == f"/t/{app.tenant.slug}/admin/"
    expect(page.locator("#site-name")).to_contain_text(f"tenant {app.tenant.slug}")
    expect(page.locator("#user-tools")).to_contain_text("stella")
    shot(page, "02-tenant-admin-index")


def test_a_wrong_password_is_refused_on_the_form(app, new_page):
    page = new_page()
    page.goto(app.admin("login/"))
    page.fill("#id_username", "stella")
    page.fill("#id_password", "not-her-password")
    page.click("input[type=submit]")

    expect(page.locator(".errornote")).to_be_visible()
    assert "/login/" in page.url


def test_swagger_ui_renders_the_operations_with_every_file_from_the_app(app, page):
    """Without internet: any request for another host is aborted, and the page still works."""
    elsewhere: list[str] = []

    def only_the_app(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_app)
    page.goto(app.url("/api/docs/"))

    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert operations.count() > 10
    expect(page.locator(".opblock-summary-path", has_text="/t/{tenant}/api/commands/").first).to_be_visible()
    shot(page, "03-swagger-ui")
    assert elsewhere == []
