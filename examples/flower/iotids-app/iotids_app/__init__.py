"""The iotids Flower app (see server_app)."""
