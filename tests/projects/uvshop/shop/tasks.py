from celery import shared_task


@shared_task
def add(a, b):
    return a + b


@shared_task
def rebuild_index():
    # Routed to the "slow" queue (CELERY_TASK_ROUTES).
    return "indexed"
