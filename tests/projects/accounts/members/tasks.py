from celery import shared_task


@shared_task
def tick():
    return "tick"
