/**
 * Version of the wire protocol declared in proto/*.proto. Every frame header carries it and
 * peers reject other versions; bump it on any change an older peer would misread.
 */
export const PROTOCOL_VERSION = 6; // 2: ring all-reduce and teacher broadcast replace the star reduction; 3: InitialState after Welcome; 4: direct same-host all-reduce (shared input and sum doorbells); 5: InitialState without teacher and center, and without the student on a fresh run; 6: same host: teacher broadcast in place (shared tensor doorbell) and one shared student
