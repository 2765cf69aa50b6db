"""From the platform admin (/admin/) to a tenant's admin, in a real browser; and a staff
user without platform rights still opens nothing of the platform."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import log_in, shot


def test_a_superuser_goes_from_the_platform_admin_to_a_tenant_admin(app, new_page):
    priya = app.member("priya", None, superuser=True)
    page = new_page()
    log_in(page, app, priya, "/admin/login/")

    admins = page.locator("#tenant-admins")
    expect(admins).to_contain_text("Tenant admins")
    shot(page, "20-platform-admin-index")
    admins.get_by_role("link", name=app.tenant.name).click()
    page.wait_for_load_state()

    assert urlsplit(page.url).path == f"/t/{app.tenant.slug}/admin/"
    expect(page.locator("#site-name")).to_contain_text(f"tenant {app.tenant.slug}")


def test_the_tenant_page_of_the_platform_admin_links_to_its_admin(app, new_page):
    page = new_page()
    log_in(page, app, app.member("priya", None, superuser=True), "/admin/login/")
    page.goto(app.url(f"/admin/tenants/tenant/{app.tenant.pk}/change/"))

    page.get_by_role("link", name="View on site").click()
    page.wait_for_load_state()

    assert urlsplit(page.url).path == f"/t/{app.tenant.slug}/admin/"


def test_staff_without_platform_rights_sees_no_tenant_and_no_platform_page(app, new_page):
    sid = app.member("sid", None)  # staff, no membership, no permission
    page = new_page()
    log_in(page, app, sid, "/admin/login/")

    expect(page.locator("#tenant-admins")).to_contain_text("No tenant admin to open")
    expect(page.locator("#tenant-admins a")).to_have_count(0)
    shot(page, "21-platform-admin-plain-staff")
    assert page.goto(app.url("/admin/tenants/tenant/")).status == 403
    page.goto(app.admin())
    assert "/login/" in page.url  # and the tenant admin sends it to log in as someone else
