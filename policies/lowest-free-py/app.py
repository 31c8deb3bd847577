"""lowest-free, in Python: the same policy as guests/lowest-free, through the same WIT."""
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import ipam
from wit_world.imports import pool


class Ipam(exports.Ipam):
    def propose(self, req: ipam.Request, view: pool.View) -> int:
        offset = view.next_free_from(0)
        if offset is None:
            raise Err(ipam.Refusal_Exhausted())
        return offset
