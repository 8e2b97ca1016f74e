from rest_framework.permissions import SAFE_METHODS, BasePermission

from config.roles import READERS, WRITERS, user_has_role


class IsIntegratorOrStaff(BasePermission):
    """Reads are open to every role (staff, integrator, auditor); writes to staff and
    integrators. Anonymous callers never get past authentication (401)."""

    message = "Your role does not allow this request."

    def has_permission(self, request, view) -> bool:
        roles = READERS if request.method in SAFE_METHODS else WRITERS
        return user_has_role(request.user, roles)


class HasAnyRole(BasePermission):
    """Any role, auditors included, reads and writes: for what a caller does to its own
    things (its API tokens)."""

    message = "Your role does not allow this request."

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, READERS)
