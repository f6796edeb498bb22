package dev.lora4j.examples.serve;

/**
 * A request the service refuses, with the HTTP status to answer and a message for the
 * client; {@link HttpApi} turns it into {@code {"error": message, "status": status}}.
 */
final class ApiError extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final int status;

    ApiError(int status, String message) {
        super(message, null, false, false);
        this.status = status;
    }

    int status() {
        return status;
    }

    /** 400: the body is not what the endpoint reads (malformed JSON, a wrong type, a missing field). */
    static ApiError badRequest(String message) {
        return new ApiError(400, message);
    }

    /** 404: no such route, adapter or adapter folder. */
    static ApiError notFound(String message) {
        return new ApiError(404, message);
    }

    /** 409: the request conflicts with the service's state (an adapter name already loaded). */
    static ApiError conflict(String message) {
        return new ApiError(409, message);
    }

    /** 422: well-formed, but the values cannot be served (a rank out of range, a folder that does not fit the model). */
    static ApiError unprocessable(String message) {
        return new ApiError(422, message);
    }
}
