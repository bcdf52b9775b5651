"""moto server whose Auto Scaling lifecycle hooks behave like AWS, for the test bed.

    python tests/moto_server.py [--host 127.0.0.1] [--port 0]

Serves all regions (region from the request signature) on one port; 0 binds a free one.
When ready it prints one line to stdout, `moto ready http://HOST:PORT`; logs go to
stderr. It exits on SIGTERM/SIGINT and when its parent process dies.

Why: moto 5.2.5 stores lifecycle hooks but never runs them. Instances go straight to
InService, TerminateInstanceInAutoScalingGroup terminates at once, and
CompleteLifecycleAction / RecordLifecycleActionHeartbeat answer HTTP 500, while the
functions under test live on lifecycle events. So this patches moto's Auto Scaling:

* Launch hooks: instances launched into the group (create, update, SetDesiredCapacity,
  AttachInstances, replacements) wait in Pending:Wait, one pending action (uuid4 token)
  per hook, and count toward desired capacity. LifecycleHookSpecificationList works.
* Terminate hooks: TerminateInstanceInAutoScalingGroup and scale-in leave the instance in
  Terminating:Wait; the replacement (capacity not decremented) launches at once, as before.
* CompleteLifecycleAction, by token or instance id: launch CONTINUE -> InService; launch
  ABANDON -> terminated, out of the group, replacement launched; terminate CONTINUE or
  ABANDON -> terminated, out of the group. Several hooks on one transition: the instance
  waits for all, an ABANDON ends all. No active action -> 400 ValidationError "No active
  Lifecycle Action found with token <t>" (or "with instance ID <id>"), as AWS answers.
  RecordLifecycleActionHeartbeat counts heartbeats, with the same error.
* As in AWS, DeleteLifecycleHook completes its outstanding actions (ABANDON launches,
  CONTINUE terminations) and DeleteAutoScalingGroup deletes the group's hooks.
* GET /_testbed/lifecycle-actions lists all actions of all regions, oldest first, so tests
  can build the EventBridge events AWS would send. An action whose instance left its wait
  state another way (EC2 TerminateInstances, group deleted) shows completed, ABANDON.
* Warm pools (moto has none): POST /_testbed/lifecycle-wait with a JSON body {region,
  group, instance_id, transition, state, origin, destination} puts an instance of the
  group in a wait state (`Warmed:Pending:Wait` into the warm pool or back to it,
  `Pending:Wait` out of it) with one pending action per hook of the transition, its
  earlier pending actions closed. CONTINUE of an action whose destination is the warm
  pool leaves the instance in `Warmed:Stopped`, counted toward no capacity.

* An EC2 resource's tags are read straight from its entry: moto 5.2.5 looks them up
  with a regular-expression scan of every tag in the region, once per resource it
  describes, so DescribeInstances slowed as the test run added instances (100 ms a call
  on a busy run). Same answer, in the same form.

* DynamoDB and SSM calls run one at a time. moto checks a ConditionExpression (or SSM's
  Overwrite=false) and then writes, without a lock, so two concurrent conditional writes
  could both succeed; in AWS each is atomic, and the functions' locks rely on that.

Not reproduced: heartbeat timeouts and DefaultResult (actions wait until completed),
notifications, Pending:Proceed/Terminating:Proceed, terminate hooks after a launch
ABANDON or on scale-in of mixed-instances groups with weighted overrides; classic ELBs
register Pending:Wait instances.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, InstanceState
from moto.autoscaling.models import TerminateInstanceActivity
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import EmptyResult
from moto.dynamodb.responses import DynamoHandler
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
from moto.moto_server.werkzeug_app import create_backend_app
from moto.ssm.responses import SimpleSystemManagerResponse
from werkzeug.serving import make_server

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
WAIT_STATE = {LAUNCHING: "Pending:Wait", TERMINATING: "Terminating:Wait"}
COUNTED = {"Pending", "Pending:Wait", "Pending:Proceed", "InService"}  # toward capacity
LOCK = threading.RLock()  # held for every Auto Scaling call and the test endpoint
ATOMIC = threading.Lock()  # held for every DynamoDB and SSM call: conditional writes


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else None


@dataclass(eq=False)
class Action:
    """One lifecycle action: one instance waiting on one hook."""

    backend: AutoScalingBackend
    group: FakeAutoScalingGroup
    state: InstanceState
    hook: str
    transition: str
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: datetime = field(default_factory=_now)
    completed: datetime | None = None
    result: str | None = None
    heartbeats: list[datetime] = field(default_factory=list)
    wait_state: str | None = None  # set for the warm pool's states
    origin: str | None = None
    destination: str | None = None

    def live(self) -> bool:
        """Pending, and its instance still waits in its group."""
        return (
            self.completed is None
            and self.backend.autoscaling_groups.get(self.group.name) is self.group
            and self.state in self.group.instance_states
            and self.state.lifecycle_state == (self.wait_state or WAIT_STATE[self.transition])
        )

    def close(self, result: str) -> None:
        self.result, self.completed = result, _now()

    def to_json(self) -> dict:
        return {
            "region": self.backend.region_name,
            "group": self.group.name,
            "hook": self.hook,
            "instance_id": self.state.instance.id,
            "transition": self.transition,
            "token": self.token,
            "state": "pending" if self.completed is None else "completed",
            "result": self.result,
            "heartbeats": len(self.heartbeats),
            "created": _iso(self.created),
            "completed": _iso(self.completed),
            "last_heartbeat": _iso(self.heartbeats[-1]) if self.heartbeats else None,
            "origin": self.origin,
            "destination": self.destination,
        }


ACTIONS: list[Action] = []  # oldest first, all accounts and regions


def _sweep() -> None:
    """Closes actions whose instance left its wait state without CompleteLifecycleAction."""
    for action in ACTIONS:
        if action.completed is None and not action.live():
            action.close("ABANDON")


def _hooks(group: FakeAutoScalingGroup, transition: str) -> list:
    return [
        h
        for h in group.autoscaling_backend.lifecycle_hooks.values()
        if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition
    ]


def _wait(group: FakeAutoScalingGroup, states: list, transition: str) -> None:
    """Puts `states` in the transition's wait state with one action per hook, if any."""
    hooks = _hooks(group, transition)
    for state in states if hooks else []:
        state.lifecycle_state = WAIT_STATE[transition]
        for hook in hooks:
            ACTIONS.append(Action(group.autoscaling_backend, group, state, hook.name, transition))


def _terminate(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    group.instance_states.remove(state)
    group.autoscaling_backend.ec2_backend.terminate_instances([state.instance.id])
    group.autoscaling_backend.update_attached_elbs(group.name)


def _complete(action: Action, result: str) -> None:
    """Completes `action`; the instance moves on once no sibling action is pending."""
    action.close(result)
    siblings = [a for a in ACTIONS if a.live() and a.state is action.state]
    if siblings and result == "CONTINUE":
        return
    for sibling in siblings:
        sibling.close("ABANDON")
    group, state = action.group, action.state
    if action.destination == "WarmPool" and result == "CONTINUE":
        state.lifecycle_state = "Warmed:Stopped"
    elif action.transition == LAUNCHING and result == "CONTINUE":
        state.lifecycle_state = "InService"
        group.autoscaling_backend.update_attached_elbs(group.name)
    else:
        _terminate(group, state)
        if action.transition == LAUNCHING:
            group.set_desired_capacity(group.desired_capacity)  # launches a replacement


def patches(cls):
    """Sets cls.<name> to the decorated function, called with moto's original first."""

    def decorate(fn):
        original = getattr(cls, fn.__name__, None)
        setattr(cls, fn.__name__, lambda self, *a, **kw: fn(original, self, *a, **kw))
        return fn

    return decorate


# --- the model --------------------------------------------------------------------------


@patches(TaggedEC2Resource)
def get_tags(original, self):
    resource = getattr(self, "id", None)
    if not resource:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource), "")
    tags = self.ec2_backend.tags.get(resource, {})  # not [...]: a defaultdict
    return [
        {"resource_id": resource, "key": k, "value": v, "resource_type": kind}
        for k, v in tags.items()
    ]



@patches(FakeAutoScalingGroup)
def active_instances(original, self):
    return [s for s in self.instance_states if s.lifecycle_state in COUNTED]


@patches(FakeAutoScalingGroup)
def set_desired_capacity(original, self, new_capacity):
    target = (self.min_size if new_capacity is None else new_capacity) or 0
    weighted = (self.mixed_instances_policy or {}).get("LaunchTemplate", {}).get("Overrides")
    excess = len(self.active_instances()) - target
    if excess > 0 and not weighted and _hooks(self, TERMINATING):
        victims = [s for s in self.active_instances() if not s.protected_from_scale_in]
        _wait(self, victims[:excess], TERMINATING)
    # moto scales in from all instances: hide those already terminating from it.
    before = list(self.instance_states)
    leaving = {s for s in before if s.lifecycle_state.startswith("Terminating")}
    self.instance_states = [s for s in before if s not in leaving]
    try:
        original(self, new_capacity)
    finally:
        now = self.instance_states
        kept = [s for s in before if s in leaving or s in now]
        self.instance_states = kept + [s for s in now if s not in before]


@patches(FakeAutoScalingGroup)
def replace_autoscaling_group_instances(original, self, count_needed, propagated_tags):
    first_new = len(self.instance_states)
    original(self, count_needed, propagated_tags)
    _wait(self, self.instance_states[first_new:], LAUNCHING)


@patches(AutoScalingBackend)
def attach_instances(original, self, group_name, instance_ids):
    original(self, group_name, instance_ids)
    group = self.autoscaling_groups[group_name]
    _wait(group, [s for s in group.instance_states if s.instance.id in instance_ids], LAUNCHING)


@patches(AutoScalingBackend)
def terminate_instance(original, self, instance_id, should_decrement):
    groups = self.autoscaling_groups.values()
    states = [s for g in groups for s in g.instance_states if s.instance.id == instance_id]
    if not states:
        raise ValidationError(
            f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
        )
    state = states[0]
    group, size = state.auto_scaling_group, state.auto_scaling_group.desired_capacity
    if state.lifecycle_state.startswith("Terminating"):
        return TerminateInstanceActivity(state.instance, size)  # already on its way out
    if not _hooks(group, TERMINATING):
        return original(self, instance_id, should_decrement)
    if should_decrement:
        group.desired_capacity = size - 1
    _wait(group, [state], TERMINATING)
    group.set_desired_capacity(group.desired_capacity)  # the replacement, unless decremented
    return TerminateInstanceActivity(state.instance, size)


@patches(AutoScalingBackend)
def delete_auto_scaling_group(original, self, group_name):
    group = self.autoscaling_groups.get(group_name)
    if group is not None:
        for key, hook in list(self.lifecycle_hooks.items()):
            if hook.auto_scaling_group_name == group_name:
                del self.lifecycle_hooks[key]
        for state in list(group.instance_states):
            if state.lifecycle_state.startswith("Terminating"):
                _terminate(group, state)
    original(self, group_name)


@patches(AutoScalingBackend)
def delete_lifecycle_hook(original, self, as_name, name):
    original(self, as_name, name)
    for action in [a for a in ACTIONS if a.backend is self and a.hook == name]:
        if action.group.name == as_name and action.live():  # an earlier one may end it
            _complete(action, "ABANDON" if action.transition == LAUNCHING else "CONTINUE")


# --- the API ----------------------------------------------------------------------------


@patches(AutoScalingResponse)
def call_action(original, self):
    with LOCK:
        return original(self)


@patches(AutoScalingResponse)
def create_auto_scaling_group(original, self):
    """Also creates the hooks of LifecycleHookSpecificationList, before the first launch."""
    backend, group = self.autoscaling_backend, self._get_param("AutoScalingGroupName")
    specs = self._get_param("LifecycleHookSpecificationList", [])
    for s in specs:
        hook = (s["LifecycleHookName"], group, s["LifecycleTransition"])
        backend.create_lifecycle_hook(*hook, s.get("HeartbeatTimeout"), s.get("DefaultResult"))
    try:
        return original(self)
    except Exception:
        for s in specs:
            backend.delete_lifecycle_hook(group, s["LifecycleHookName"])
        raise


def _find_action(response: AutoScalingResponse) -> Action:
    group = response._get_param("AutoScalingGroupName")
    hook = response._get_param("LifecycleHookName")
    token = response._get_param("LifecycleActionToken")
    instance_id = response._get_param("InstanceId")
    if not token and not instance_id:
        raise ValidationError("Either LifecycleActionToken or InstanceId must be provided")
    _sweep()
    for a in ACTIONS:
        if (
            a.completed is None
            and (a.backend, a.group.name, a.hook) == (response.autoscaling_backend, group, hook)
            and (a.token == token if token else a.state.instance.id == instance_id)
        ):
            return a
    what = f"token {token}" if token else f"instance ID {instance_id}"
    raise ValidationError(f"No active Lifecycle Action found with {what}")


@patches(AutoScalingResponse)
def complete_lifecycle_action(original, self):
    result = self._get_param("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError(f"Invalid LifecycleActionResult {result}: use CONTINUE or ABANDON")
    _complete(_find_action(self), result)
    return EmptyResult()


@patches(AutoScalingResponse)
def record_lifecycle_action_heartbeat(original, self):
    _find_action(self).heartbeats.append(_now())
    return EmptyResult()


@patches(DynamoHandler)
def call_action(original, self):  # noqa: F811 (a patch per class)
    with ATOMIC:
        return original(self)


@patches(SimpleSystemManagerResponse)
def call_action(original, self):  # noqa: F811
    with ATOMIC:
        return original(self)


def _put_in_wait(request: dict) -> list[dict]:
    """The warm pool's transitions moto lacks: see the module's docstring."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = autoscaling_backends[DEFAULT_ACCOUNT_ID][request["region"]]
    group = backend.autoscaling_groups[request["group"]]
    states = [s for s in group.instance_states if s.instance.id == request["instance_id"]]
    if not states:
        raise ValidationError(f"instance {request['instance_id']} is not in {group.name}")
    state, transition = states[0], request["transition"]
    _sweep()
    for earlier in ACTIONS:
        if earlier.completed is None and earlier.state is state:
            earlier.close("ABANDON")
    state.lifecycle_state = request["state"]
    added = []
    for hook in _hooks(group, transition):
        action = Action(backend, group, state, hook.name, transition)
        action.wait_state = request["state"]
        action.origin, action.destination = request.get("origin"), request.get("destination")
        ACTIONS.append(action)
        added.append(action.to_json())
    return added


# --- the server -------------------------------------------------------------------------


def testbed_app(moto_app):
    """WSGI app: /_testbed/lifecycle-actions here, everything else to moto."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/") == "/_testbed/lifecycle-actions":
            with LOCK:
                _sweep()
                body = json.dumps({"actions": [a.to_json() for a in ACTIONS]}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        if path.rstrip("/") == "/_testbed/lifecycle-wait":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(size) or b"{}")
            try:
                with LOCK:
                    body = json.dumps({"actions": _put_in_wait(request)}).encode()
                status = "200 OK"
            except (KeyError, ValidationError) as e:
                body, status = json.dumps({"error": repr(e)}).encode(), "400 Bad Request"
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response(status, headers)
            return [body]
        if path == "/moto-api/reset":  # moto forgets every group, so forget their actions
            with LOCK:
                ACTIONS.clear()
        return moto_app(environ, start_response)

    return app


def exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    logging.info("parent %d is gone, exiting", parent)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 binds a free port")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: os._exit(0))

    moto_app = DomainDispatcherApplication(create_backend_app)
    app, handler = testbed_app(moto_app), MotoRequestHandler
    server = make_server(args.host, args.port, app, threaded=True, request_handler=handler)
    os.environ["MOTO_PORT"] = str(server.server_port)  # moto builds some URLs from it
    print(f"moto ready http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
