"""The gateway's routes, one ``APIRouter`` per concern; ``gateway.app.ROUTERS`` lists them in
the order ``create_app`` includes them."""
